"""Read-only tools over the property portfolio: search listings and look one up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Self

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import ColumnElement, and_, func, or_, select

from tools.presentation import Detail, Presentation, PresentationItem, Source
from tools.registry import Registry, ToolContext, ToolResult
from tools.tables import ACTIVE_REQUEST_STATUSES, MaintenanceRequest, Property, PropertyStatus, PropertyType

if TYPE_CHECKING:
    from tools.db import Database

registry = Registry()

SEARCH_LIMIT: Final = 20

_STATE_NAMES: Final = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
}  # fmt: skip
_STATE_CODES: Final = frozenset(_STATE_NAMES.values())
_ZIP: Final = re.compile(r"(\d{5})(?:-\d{4})?")


def state_code(text: str) -> str | None:
    """'TX', 'tx' or 'Texas' -> 'TX'; None when `text` is not a US state."""
    cleaned = " ".join(text.replace(".", "").split())
    if cleaned.upper() in _STATE_CODES:
        return cleaned.upper()
    return _STATE_NAMES.get(cleaned.lower())


@dataclass(frozen=True)
class Location:
    city: str | None = None
    state: str | None = None
    zip: str | None = None

    def condition(self) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if self.city is not None:
            parts.append(func.lower(Property.city) == self.city.lower())
        if self.state is not None:
            parts.append(Property.state == self.state)
        if self.zip is not None:
            parts.append(Property.zip == self.zip)
        return and_(*parts)


def parse_location(text: str) -> Location | None:
    """Understand 'Austin', 'Austin, TX', 'austin tx', 'Texas', 'TX' or '78704'; None if not."""
    cleaned = " ".join(text.split()).strip(" ,")
    if not cleaned:
        return None
    if match := _ZIP.fullmatch(cleaned):
        return Location(zip=match.group(1))
    if "," in cleaned:
        city, _, rest = (part.strip() for part in cleaned.rpartition(","))
        # "Austin, TX 78704": the zip adds nothing the city and state do not already say.
        rest = _ZIP.sub("", rest).strip()
        state = state_code(rest)
        if not city or state is None:
            return None
        return Location(city=city, state=state)
    if (state := state_code(cleaned)) is not None:
        return Location(state=state)
    tokens = cleaned.split()
    for size in (2, 1):  # "New York NY" / "Raleigh North Carolina"
        if len(tokens) > size and (state := state_code(" ".join(tokens[-size:]))) is not None:
            return Location(city=" ".join(tokens[:-size]), state=state)
    return Location(city=cleaned)


def normalize_property_id(raw: str) -> str:
    """' p-1001 ' -> 'P-1001'; a bare number gets the 'P-' prefix people often leave off."""
    cleaned = raw.strip().upper()
    return f"P-{cleaned}" if cleaned.isdigit() else cleaned


def money(amount: int) -> str:
    return f"${amount:,}/mo"


def rooms(bedrooms: int, bathrooms: float) -> str:
    beds = "Studio" if bedrooms == 0 else f"{bedrooms} bd"
    return f"{beds} · {bathrooms:g} ba"


def full_address(prop: Property) -> str:
    return f"{prop.address}, {prop.city}, {prop.state} {prop.zip}"


def compact(prop: Property) -> dict[str, Any]:
    return {
        "id": prop.id,
        "address": prop.address,
        "city": prop.city,
        "state": prop.state,
        "type": prop.property_type,
        "bedrooms": prop.bedrooms,
        "bathrooms": prop.bathrooms,
        "monthly_rent": prop.monthly_rent,
        "status": prop.status,
    }


class SearchPropertiesArgs(BaseModel):
    location: str = Field(
        description="Where to search: a city ('Austin'), city and state ('Austin, TX'), "
        "a two-letter state code ('TX') or a 5-digit zip code ('78704').",
    )
    property_type: PropertyType | None = Field(default=None, description="Only this kind of property.")
    min_price: int | None = Field(default=None, ge=0, description="Lowest monthly rent in whole US dollars.")
    max_price: int | None = Field(default=None, ge=0, description="Highest monthly rent in whole US dollars.")
    min_bedrooms: int | None = Field(
        default=None, ge=0, le=20, description="At least this many bedrooms (0 includes studios)."
    )
    status: PropertyStatus | None = Field(
        default=None, description="Only units that are available to rent now, or only leased ones; null for both."
    )

    @model_validator(mode="after")
    def _price_range(self) -> Self:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not be greater than max_price")
        return self


def _search_cache_key(args: SearchPropertiesArgs) -> dict[str, Any]:
    # Whitespace only: parse_location and the title both collapse it, while letter case shows in
    # the title ("austin" stays "austin" when the matches span several places).
    return {**args.model_dump(mode="json"), "location": " ".join(args.location.split())}


@registry.tool(
    cache_ttl=60,
    cache_key=_search_cache_key,
    progress=lambda a: f"Searching properties in {' '.join(a.location.split())}…",
)
async def search_properties(args: SearchPropertiesArgs, ctx: ToolContext) -> ToolResult:
    """Search the rental portfolio by location, with optional type, monthly-rent, bedroom and availability filters.

    Returns at most 20 properties, cheapest first, each with its status (available or leased) and its id for
    get_property.
    """
    location = parse_location(args.location)
    if location is None:
        return ToolResult.failure(
            f"Could not understand the location {args.location!r}. "
            "Use a city ('Austin'), 'City, ST' ('Austin, TX'), a state code ('TX') or a zip code."
        )
    conditions = [location.condition()]
    if args.property_type is not None:
        conditions.append(Property.property_type == args.property_type)
    if args.min_price is not None:
        conditions.append(Property.monthly_rent >= args.min_price)
    if args.max_price is not None:
        conditions.append(Property.monthly_rent <= args.max_price)
    if args.min_bedrooms is not None:
        conditions.append(Property.bedrooms >= args.min_bedrooms)
    if args.status is not None:
        conditions.append(Property.status == args.status)

    async with ctx.db.session() as session:
        total = (await session.execute(select(func.count()).select_from(Property).where(*conditions))).scalar_one()
        rows = list(
            (
                await session.scalars(
                    select(Property).where(*conditions).order_by(Property.monthly_rent, Property.id).limit(SEARCH_LIMIT)
                )
            ).all()
        )
        known_cities: list[str] = []
        if not rows:
            # Telling the model where listings exist lets it recover from a typo or an
            # unsupported market without another round trip.
            pairs = await session.execute(
                select(Property.city, Property.state).distinct().order_by(Property.state, Property.city)
            )
            known_cities = [f"{city}, {state}" for city, state in pairs]

    place = _place_label(rows, args.location)
    data: dict[str, Any] = {
        "count": len(rows),
        "total_matches": total,
        "truncated": total > len(rows),
        "properties": [compact(p) for p in rows],
    }
    if known_cities:
        data["cities_with_listings"] = known_cities
    noun = "property" if total == 1 else "properties"
    which = f"{args.status} " if args.status is not None else ""
    title = f"{total} {which}{noun} in {place}"
    if total > len(rows):
        title = f"Cheapest {len(rows)} of {total} {which}properties in {place}"
    presentation = Presentation(
        title=title,
        items=[
            PresentationItem(
                title=f"{p.address}, {p.city}, {p.state}",
                fields=[
                    Detail(label="Type", value=p.property_type.capitalize()),
                    Detail(label="Size", value=rooms(p.bedrooms, p.bathrooms)),
                    Detail(label="Rent", value=money(p.monthly_rent)),
                    Detail(label="Status", value=p.status.capitalize()),
                    Detail(label="ID", value=p.id),
                ],
            )
            for p in rows
        ],
        footer=None if rows else "No matches. Try a wider rent range or fewer filters.",
    )
    return ToolResult(data=data, presentation=presentation, sources=[_source(p) for p in rows])


def _place_label(rows: list[Property], asked: str) -> str:
    places = {(p.city, p.state) for p in rows}
    if len(places) == 1:
        city, state = places.pop()
        return f"{city}, {state}"
    return " ".join(asked.split())


class GetPropertyArgs(BaseModel):
    property_id: str = Field(description="The property id from search_properties, e.g. 'P-1001'.")


@registry.tool(
    cache_ttl=30,
    cache_key=lambda args: normalize_property_id(args.property_id),
    progress=lambda a: f"Looking up {normalize_property_id(a.property_id)}…",
)
async def get_property(args: GetPropertyArgs, ctx: ToolContext) -> ToolResult:
    """Full details of one property (size, rent, status, year built) and its number of open maintenance requests."""
    pid = normalize_property_id(args.property_id)
    async with ctx.db.session() as session:
        prop = await session.get(Property, pid)
        if prop is None:
            return ToolResult.failure(f"No property with id '{pid}'. Use search_properties to find ids.")
        open_requests = (
            await session.execute(
                select(func.count())
                .select_from(MaintenanceRequest)
                .where(
                    MaintenanceRequest.property_id == pid,
                    MaintenanceRequest.status.in_(ACTIVE_REQUEST_STATUSES),
                )
            )
        ).scalar_one()

    data = {
        **compact(prop),
        "zip": prop.zip,
        "sqft": prop.sqft,
        "year_built": prop.year_built,
        # "open" here means still needing work: open, scheduled or in progress.
        "open_maintenance_requests": open_requests,
    }
    presentation = Presentation(
        title=full_address(prop),
        fields=[
            Detail(label="ID", value=prop.id),
            Detail(label="Type", value=prop.property_type.capitalize()),
            Detail(label="Size", value=f"{rooms(prop.bedrooms, prop.bathrooms)} · {prop.sqft:,} sq ft"),
            Detail(label="Rent", value=money(prop.monthly_rent)),
            Detail(label="Status", value=prop.status.capitalize()),
            Detail(label="Year built", value=str(prop.year_built)),
            Detail(label="Open maintenance requests", value=str(open_requests)),
        ],
    )
    return ToolResult(data=data, presentation=presentation, sources=[_source(prop)])


def _source(prop: Property) -> Source:
    detail = f"{rooms(prop.bedrooms, prop.bathrooms)} · {money(prop.monthly_rent)} · {prop.status}"
    return Source(id=prop.id, kind="property", title=f"{prop.address}, {prop.city}, {prop.state}", detail=detail)


async def property_choices(db: Database, query: str, limit: int = 20) -> list[tuple[str, str]]:
    """Properties whose id, address or city contains `query` (any case), as (id, "P-1001 · 1208 S Congress Ave,
    Austin") pairs for a form's search box; the first `limit` by id."""
    words = " ".join(query.split()).lower()
    stmt = select(Property).order_by(Property.id).limit(limit)
    if words:
        like = f"%{words}%"
        columns = (Property.id, Property.address, Property.city)
        stmt = stmt.where(or_(*(func.lower(column).like(like) for column in columns)))
    async with db.session() as session:
        rows = (await session.execute(stmt)).scalars().all()
    return [(p.id, f"{p.id} · {p.address}, {p.city}") for p in rows]
