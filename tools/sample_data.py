"""Deterministic sample data: a small portfolio across seven US cities, loaded into an empty database.

The rows are literal on purpose: tests and demos refer to specific ids (P-1001 is a 2-bedroom in
Austin, MR-5003 is completed), so the data must not depend on a random seed or the current date.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, TypedDict

from tools.dates import add_months


class PropertyRow(TypedDict):
    id: str
    address: str
    city: str
    state: str
    zip: str
    property_type: str
    bedrooms: int
    bathrooms: float
    sqft: int
    monthly_rent: int
    status: str
    year_built: int


class MaintenanceRow(TypedDict):
    id: str
    property_id: str
    issue_type: str
    priority: str
    status: str
    description: str
    preferred_date: dt.date | None
    created_at: dt.datetime
    created_by: str
    idempotency_key: str | None


_CITIES: Final = {
    "AUS": ("Austin", "TX"),
    "DEN": ("Denver", "CO"),
    "SEA": ("Seattle", "WA"),
    "CHI": ("Chicago", "IL"),
    "ATL": ("Atlanta", "GA"),
    "PHX": ("Phoenix", "AZ"),
    "BNA": ("Nashville", "TN"),
}

# id, city, address, zip, type, bedrooms, bathrooms, sqft, monthly rent (USD), status, year built
_PROPERTIES: Final[tuple[tuple[str, str, str, str, str, int, float, int, int, str, int], ...]] = (
    ("P-1001", "AUS", "1208 S Congress Ave", "78704", "apartment", 2, 2.0, 1050, 2150, "available", 2016),
    ("P-1002", "AUS", "2410 E 6th St", "78702", "condo", 2, 2.0, 1120, 2350, "available", 2019),
    ("P-1003", "AUS", "3101 Guadalupe St", "78705", "apartment", 1, 1.0, 680, 1450, "available", 2008),
    ("P-1004", "AUS", "1905 Manor Rd", "78722", "house", 3, 2.0, 1640, 2850, "leased", 1962),
    ("P-1005", "AUS", "5520 Burnet Rd", "78756", "townhouse", 2, 2.5, 1280, 2200, "available", 2014),
    ("P-1006", "AUS", "4507 Duval St", "78751", "duplex", 2, 1.0, 950, 1795, "available", 1948),
    ("P-1007", "AUS", "1612 W 35th St", "78703", "house", 4, 3.0, 2480, 4200, "available", 1978),
    ("P-1008", "AUS", "2200 S Pleasant Valley Rd", "78741", "apartment", 2, 1.0, 890, 1525, "leased", 1985),
    ("P-1009", "AUS", "4312 Menchaca Rd", "78745", "house", 3, 2.0, 1510, 2400, "available", 1971),
    ("P-1010", "DEN", "1450 E Colfax Ave", "80218", "apartment", 1, 1.0, 640, 1395, "available", 1962),
    ("P-1011", "DEN", "2855 Larimer St", "80205", "condo", 2, 2.0, 1090, 2295, "available", 2017),
    ("P-1012", "DEN", "1530 S Pearl St", "80210", "house", 3, 2.0, 1720, 3100, "leased", 1925),
    ("P-1013", "DEN", "4120 Tennyson St", "80212", "townhouse", 3, 2.5, 1650, 2950, "available", 2018),
    ("P-1014", "DEN", "3318 W 32nd Ave", "80211", "duplex", 2, 1.0, 980, 1850, "available", 1938),
    ("P-1015", "DEN", "1200 E 17th Ave", "80218", "apartment", 0, 1.0, 480, 1195, "available", 1958),
    ("P-1016", "DEN", "245 S Broadway", "80209", "apartment", 2, 1.0, 900, 1750, "leased", 1972),
    ("P-1017", "DEN", "3920 Federal Blvd", "80211", "house", 2, 1.0, 1040, 2050, "available", 1952),
    ("P-1018", "DEN", "1801 Blake St", "80202", "condo", 1, 1.0, 760, 1900, "available", 2007),
    ("P-1019", "SEA", "1623 Bellevue Ave", "98122", "apartment", 1, 1.0, 620, 1850, "available", 1928),
    ("P-1020", "SEA", "5408 Ballard Ave NW", "98107", "condo", 2, 2.0, 980, 2900, "available", 2015),
    ("P-1021", "SEA", "3617 Fremont Ave N", "98103", "townhouse", 3, 2.5, 1480, 3650, "leased", 2019),
    ("P-1022", "SEA", "4415 California Ave SW", "98116", "house", 3, 1.5, 1600, 3400, "available", 1941),
    ("P-1023", "SEA", "1210 NE 65th St", "98115", "apartment", 2, 1.0, 860, 2350, "available", 1968),
    ("P-1024", "SEA", "2012 Queen Anne Ave N", "98109", "condo", 1, 1.0, 700, 2250, "available", 2003),
    ("P-1025", "SEA", "3810 Rainier Ave S", "98144", "duplex", 2, 1.0, 940, 2100, "available", 1955),
    ("P-1026", "SEA", "610 15th Ave E", "98112", "house", 4, 2.5, 2300, 4800, "leased", 1912),
    ("P-1027", "SEA", "8520 Greenwood Ave N", "98103", "apartment", 0, 1.0, 430, 1550, "available", 2012),
    ("P-1028", "CHI", "2450 N Clark St", "60614", "apartment", 1, 1.0, 720, 1750, "available", 1926),
    ("P-1029", "CHI", "2140 W Armitage Ave", "60647", "condo", 2, 2.0, 1150, 2450, "available", 2006),
    ("P-1030", "CHI", "1522 N Milwaukee Ave", "60622", "apartment", 2, 1.0, 950, 2100, "leased", 1915),
    ("P-1031", "CHI", "1818 S Halsted St", "60608", "duplex", 3, 1.0, 1200, 1950, "available", 1895),
    ("P-1032", "CHI", "5220 N Broadway", "60640", "apartment", 1, 1.0, 650, 1395, "available", 1929),
    ("P-1033", "CHI", "1045 W Belmont Ave", "60657", "condo", 2, 2.0, 1080, 2300, "available", 2001),
    ("P-1034", "CHI", "3512 N Damen Ave", "60618", "house", 3, 2.0, 1700, 3200, "available", 1910),
    ("P-1035", "CHI", "1300 S Michigan Ave", "60605", "condo", 1, 1.0, 800, 2200, "leased", 2009),
    ("P-1036", "CHI", "2016 W Division St", "60622", "townhouse", 3, 2.5, 1900, 3600, "available", 2016),
    ("P-1037", "ATL", "855 Peachtree St NE", "30308", "apartment", 1, 1.0, 730, 1650, "available", 2014),
    ("P-1038", "ATL", "1015 Ponce de Leon Ave NE", "30306", "condo", 2, 2.0, 1100, 2200, "available", 1999),
    ("P-1039", "ATL", "1180 N Highland Ave NE", "30306", "house", 3, 2.0, 1650, 3000, "leased", 1935),
    ("P-1040", "ATL", "420 Edgewood Ave SE", "30312", "townhouse", 2, 2.5, 1300, 2150, "available", 2017),
    ("P-1041", "ATL", "1250 Memorial Dr SE", "30316", "house", 3, 2.0, 1500, 2400, "available", 1948),
    ("P-1042", "ATL", "975 Glenwood Ave SE", "30316", "apartment", 2, 2.0, 1020, 1795, "available", 2020),
    ("P-1043", "ATL", "1660 Howell Mill Rd NW", "30318", "apartment", 1, 1.0, 690, 1550, "leased", 2018),
    ("P-1044", "ATL", "65 10th St NE", "30309", "condo", 2, 2.0, 1150, 2600, "available", 2008),
    ("P-1045", "ATL", "590 Moreland Ave NE", "30307", "duplex", 2, 1.0, 980, 1650, "available", 1940),
    ("P-1046", "PHX", "2202 N Central Ave", "85004", "apartment", 1, 1.0, 700, 1350, "available", 1984),
    ("P-1047", "PHX", "3820 E Camelback Rd", "85018", "condo", 2, 2.0, 1120, 1950, "available", 2005),
    ("P-1048", "PHX", "5645 N 7th St", "85014", "house", 3, 2.0, 1580, 2300, "leased", 1962),
    ("P-1049", "PHX", "4210 E Indian School Rd", "85018", "townhouse", 2, 2.5, 1250, 1800, "available", 2001),
    ("P-1050", "PHX", "1130 W Roosevelt St", "85007", "house", 2, 1.0, 1010, 1700, "available", 1930),
    ("P-1051", "PHX", "4520 N 16th St", "85016", "apartment", 2, 1.0, 880, 1425, "available", 1979),
    ("P-1052", "PHX", "2815 E McDowell Rd", "85008", "duplex", 2, 1.0, 920, 1375, "available", 1958),
    ("P-1053", "PHX", "3302 N 44th St", "85018", "house", 4, 2.5, 2250, 3100, "available", 1995),
    ("P-1054", "PHX", "3245 W Thomas Rd", "85017", "apartment", 3, 2.0, 1180, 1650, "leased", 1989),
    ("P-1055", "BNA", "2004 12th Ave S", "37204", "house", 3, 2.0, 1600, 3100, "available", 1938),
    ("P-1056", "BNA", "1006 Gallatin Ave", "37206", "apartment", 1, 1.0, 690, 1450, "available", 2018),
    ("P-1057", "BNA", "1705 Belmont Blvd", "37212", "duplex", 2, 1.0, 990, 1850, "leased", 1928),
    ("P-1058", "BNA", "4207 Charlotte Ave", "37209", "townhouse", 3, 2.5, 1750, 2500, "available", 2020),
    ("P-1059", "BNA", "1410 Woodland St", "37206", "house", 2, 1.0, 1080, 2050, "available", 1925),
    ("P-1060", "BNA", "2310 8th Ave S", "37204", "condo", 2, 2.0, 1140, 2150, "available", 2017),
    ("P-1061", "BNA", "1500 Division St", "37203", "apartment", 1, 1.0, 720, 1750, "available", 2016),
    ("P-1062", "BNA", "1012 Eastland Ave", "37206", "condo", 1, 1.0, 750, 1600, "leased", 2015),
    ("P-1063", "BNA", "3716 Nolensville Pike", "37211", "apartment", 2, 2.0, 1040, 1550, "available", 2009),
)

SAMPLE_PROPERTIES: Final[tuple[PropertyRow, ...]] = tuple(
    PropertyRow(
        id=pid,
        address=address,
        city=_CITIES[city][0],
        state=_CITIES[city][1],
        zip=zip_code,
        property_type=kind,
        bedrooms=beds,
        bathrooms=baths,
        sqft=sqft,
        monthly_rent=rent,
        status=status,
        year_built=built,
    )
    for pid, city, address, zip_code, kind, beds, baths, sqft, rent, status, built in _PROPERTIES
)

SAMPLE_CREATED_BY: Final = "sample-data"


def _at(day: str, hour: int) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


# id, property, issue, priority, status, description, preferred date, created (day, hour UTC)
_REQUESTS: Final[tuple[tuple[str, str, str, str, str, str, str | None, str, int], ...]] = (
    ("MR-5001", "P-1001", "plumbing", "medium", "open",
     "Kitchen sink drains slowly; water stands for minutes after running the dishwasher.",
     None, "2025-05-02", 14),
    ("MR-5002", "P-1004", "hvac", "high", "scheduled",
     "AC blows warm air upstairs; tenant reports 84°F in the bedrooms.",
     "2025-06-12", "2025-06-09", 16),
    ("MR-5003", "P-1011", "appliance", "low", "completed",
     "Dishwasher door latch is loose and the door drops open.",
     "2025-04-18", "2025-04-11", 10),
    ("MR-5004", "P-1012", "electrical", "high", "in_progress",
     "Two outlets in the kitchen are dead and the GFCI will not reset.",
     "2025-06-03", "2025-06-01", 9),
    ("MR-5005", "P-1021", "plumbing", "emergency", "completed",
     "Burst supply line under the bathroom vanity; water shut off at the main.",
     None, "2025-03-22", 23),
    ("MR-5006", "P-1030", "hvac", "medium", "scheduled",
     "Radiator in the living room knocks loudly and heats unevenly.",
     "2025-06-20", "2025-06-10", 13),
    ("MR-5007", "P-1034", "other", "low", "open",
     "Back gate latch is broken; gate swings open in the wind.",
     None, "2025-06-11", 18),
    ("MR-5008", "P-1039", "appliance", "medium", "scheduled",
     "Refrigerator not keeping temperature; freezer is fine.",
     "2025-06-16", "2025-06-12", 11),
    ("MR-5009", "P-1048", "hvac", "emergency", "completed",
     "AC failed completely during a heat advisory; 97°F indoors.",
     None, "2025-06-05", 15),
    ("MR-5010", "P-1055", "electrical", "medium", "open",
     "Porch light and hallway light flicker when the dryer runs.",
     None, "2025-06-13", 8),
    ("MR-5011", "P-1002", "appliance", "low", "scheduled",
     "Garbage disposal hums but does not spin.",
     "2025-06-18", "2025-06-12", 17),
    ("MR-5012", "P-1026", "plumbing", "high", "open",
     "Water stain spreading on the kitchen ceiling below the upstairs bathroom.",
     None, "2025-06-14", 12),
)  # fmt: skip

SAMPLE_MAINTENANCE_REQUESTS: Final[tuple[MaintenanceRow, ...]] = tuple(
    MaintenanceRow(
        id=rid,
        property_id=pid,
        issue_type=issue,
        priority=priority,
        status=status,
        description=description,
        preferred_date=dt.date.fromisoformat(preferred) if preferred else None,
        created_at=_at(day, hour),
        created_by=SAMPLE_CREATED_BY,
        idempotency_key=None,
    )
    for rid, pid, issue, priority, status, description, preferred, day, hour in _REQUESTS
)


class TenantRow(TypedDict):
    id: str
    full_name: str
    email: str
    phone: str | None
    property_id: str
    created_at: dt.datetime
    created_by: str
    idempotency_key: str | None


class LeaseRow(TypedDict):
    id: str
    tenant_id: str
    property_id: str
    start_date: dt.date
    end_date: dt.date
    monthly_rent: int
    deposit: int
    status: str
    document_id: str | None
    created_at: dt.datetime
    idempotency_key: str | None


# tenant id, name, e-mail, phone, property, lease start, months, rent, deposit (the leased sample properties)
_TENANTS: Final[tuple[tuple[str, str, str, str | None, str, str, int, int, int], ...]] = (
    ("TN-3001", "Alicia Moreno", "alicia.moreno@example.com", "+1 512 5550142", "P-1004", "2025-02-01", 12, 2850, 2850),
    ("TN-3002", "Ben Okafor", "ben.okafor@example.com", None, "P-1008", "2024-09-01", 12, 1525, 1525),
    ("TN-3003", "Chen Wei", "chen.wei@example.com", "+1 303 555 0107", "P-1012", "2025-01-15", 18, 3100, 4650),
    ("TN-3004", "Dana Fischer", "dana.fischer@example.com", None, "P-1016", "2025-04-01", 12, 1750, 1750),
    ("TN-3005", "Elena Petrova", "elena.petrova@example.com", "+1 206 5550190", "P-1021", "2024-11-01", 24, 3650, 3650),
    ("TN-3006", "Farid Haddad", "farid.haddad@example.com", None, "P-1026", "2025-03-01", 12, 4800, 7200),
    ("TN-3007", "Grace Kim", "grace.kim@example.com", "+1 312 555 0133", "P-1030", "2025-05-01", 12, 2100, 2100),
    ("TN-3008", "Hugo Silva", "hugo.silva@example.com", None, "P-1035", "2024-12-01", 12, 2200, 2200),
)  # fmt: skip


SAMPLE_TENANTS: Final[tuple[TenantRow, ...]] = tuple(
    TenantRow(
        id=tid,
        full_name=name,
        email=email,
        phone=phone,
        property_id=pid,
        created_at=_at(start, 9),
        created_by=SAMPLE_CREATED_BY,
        idempotency_key=None,
    )
    for tid, name, email, phone, pid, start, _, _, _ in _TENANTS
)

SAMPLE_LEASES: Final[tuple[LeaseRow, ...]] = tuple(
    LeaseRow(
        id=f"LS-{tid.split('-')[1]}",
        tenant_id=tid,
        property_id=pid,
        start_date=dt.date.fromisoformat(start),
        end_date=add_months(dt.date.fromisoformat(start), months),
        monthly_rent=rent,
        deposit=deposit,
        status="active",
        document_id=None,
        created_at=_at(start, 9),
        idempotency_key=None,
    )
    for tid, _, _, _, pid, start, months, rent, deposit in _TENANTS
)
