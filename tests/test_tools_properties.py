"""Property tools and the Database they run on, against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import func, insert, inspect, select

import tools.maintenance
import tools.properties
from tools import ToolArgumentError, ToolContext, ToolResult, builtin_tools
from tools.db import Database, normalize_url
from tools.sample_data import SAMPLE_MAINTENANCE_REQUESTS, SAMPLE_PROPERTIES
from tools.tables import ACTIVE_REQUEST_STATUSES, MaintenanceRequest, Property

registry = builtin_tools()

assert tools.properties and tools.maintenance  # imported for their @tool registrations

ALL_TOOLS = (
    "search_properties",
    "get_property",
    "list_maintenance_requests",
    "schedule_maintenance",
    "cancel_maintenance_request",
)
# The JSON-schema keywords OpenAI accepts in strict function schemas; anything else is a 400.
STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "description", "enum", "const",
    "anyOf", "items", "$ref", "$defs", "format", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
}  # fmt: skip


def context(db: Database, key: str | None = None) -> ToolContext:
    return ToolContext(db=db, user="slack:T1:U1", conversation_key="slack:T1:C1", idempotency_key=key)


async def call(name: str, db: Database, key: str | None = None, **arguments: Any) -> ToolResult:
    """Run a tool the way the agent does: JSON arguments through the registry's parser."""
    spec = registry.get(name)
    assert spec is not None, f"{name} is not registered"
    result = await spec.func(spec.parse_arguments(json.dumps(arguments)), context(db, key))
    assert isinstance(result, ToolResult)
    return result


def expected_ids(**match: Any) -> set[str]:
    rows: list[Mapping[str, Any]] = list(SAMPLE_PROPERTIES)
    return {p["id"] for p in rows if all(p[k] == v for k, v in match.items())}


# -- search ----------------------------------------------------------------------------------------


async def test_search_austin_finds_two_bedroom_places(database: Database) -> None:
    result = await call("search_properties", database, location="Austin, TX", min_bedrooms=2)

    assert result.ok, result.error
    found = result.data["properties"]
    two_bedrooms = [p for p in found if p["bedrooms"] == 2]
    assert len(two_bedrooms) >= 3
    assert all(re.fullmatch(r"P-\d{4}", p["id"]) for p in found)
    assert {(p["city"], p["state"]) for p in found} == {("Austin", "TX")}
    assert {p["id"] for p in found} == {
        p["id"] for p in SAMPLE_PROPERTIES if p["city"] == "Austin" and p["bedrooms"] >= 2
    }
    rents = [p["monthly_rent"] for p in found]
    assert rents == sorted(rents)
    assert result.data["count"] == len(found)
    assert result.data["truncated"] is False

    presentation = result.presentation
    assert presentation is not None
    assert presentation.title == f"{len(found)} properties in Austin, TX"
    first = presentation.items[0]
    fields = {f.label: f.value for f in first.fields}
    assert list(fields) == ["Type", "Size", "Rent", "Status", "ID"]
    assert fields["ID"] == found[0]["id"]
    assert fields["Rent"] == f"${found[0]['monthly_rent']:,}/mo"
    assert fields["Size"] == f"{found[0]['bedrooms']} bd · {found[0]['bathrooms']:g} ba"
    assert fields["Status"] == found[0]["status"].capitalize() and found[0]["status"] in ("available", "leased")


@pytest.mark.parametrize("status", ["available", "leased"])
async def test_status_filter_keeps_only_available_or_only_leased_units(database: Database, status: str) -> None:
    result = await call("search_properties", database, location="Austin, TX", status=status)
    assert result.ok, result.error
    expected = expected_ids(city="Austin", status=status)
    assert expected and expected != expected_ids(city="Austin")  # the sample data has both kinds in Austin
    assert {p["id"] for p in result.data["properties"]} == expected
    assert {p["status"] for p in result.data["properties"]} == {status}
    assert result.presentation is not None
    assert result.presentation.title == f"{len(expected)} {status} properties in Austin, TX"
    assert {f.value for i in result.presentation.items for f in i.fields if f.label == "Status"} == {
        status.capitalize()
    }


async def test_without_a_status_both_kinds_are_found_and_a_bad_status_is_refused(sqlite_database: Database) -> None:
    both = await call("search_properties", sqlite_database, location="Austin, TX", status=None)
    assert {p["status"] for p in both.data["properties"]} == {"available", "leased"}
    with pytest.raises(ToolArgumentError, match="status"):
        await call("search_properties", sqlite_database, location="Austin", status="vacant")


@pytest.mark.parametrize("location", ["Austin", "austin", "AUSTIN, tx", "Austin TX", "Austin, Texas", "TX"])
async def test_location_spellings_all_mean_austin(sqlite_database: Database, location: str) -> None:
    result = await call("search_properties", sqlite_database, location=location)
    assert {p["id"] for p in result.data["properties"]} == expected_ids(city="Austin", state="TX")


async def test_location_by_zip_and_wrong_state(sqlite_database: Database) -> None:
    by_zip = await call("search_properties", sqlite_database, location="78704")
    assert {p["id"] for p in by_zip.data["properties"]} == expected_ids(zip="78704")
    assert len(by_zip.data["properties"]) >= 1

    wrong_state = await call("search_properties", sqlite_database, location="Austin, CO")
    assert wrong_state.ok
    assert wrong_state.data["count"] == 0
    assert "Austin, TX" in wrong_state.data["cities_with_listings"]


async def test_filters_narrow_results(database: Database) -> None:
    result = await call(
        "search_properties",
        database,
        location="Denver, CO",
        property_type="condo",
        min_price=2000,
        max_price=2500,
        min_bedrooms=2,
    )
    expected = {
        p["id"]
        for p in SAMPLE_PROPERTIES
        if p["city"] == "Denver"
        and p["property_type"] == "condo"
        and 2000 <= p["monthly_rent"] <= 2500
        and p["bedrooms"] >= 2
    }
    assert expected  # the sample data must make this filter meaningful
    assert {p["id"] for p in result.data["properties"]} == expected

    cheap = await call("search_properties", database, location="Phoenix", max_price=1500)
    assert cheap.data["properties"]
    assert all(p["monthly_rent"] <= 1500 for p in cheap.data["properties"])
    assert len(cheap.data["properties"]) < len(expected_ids(city="Phoenix"))


async def test_search_caps_at_twenty_and_says_so(sqlite_database: Database) -> None:
    async with sqlite_database.session() as session:
        await session.execute(
            insert(Property),
            [
                {
                    **SAMPLE_PROPERTIES[0],
                    "id": f"P-9{n:03d}",
                    "address": f"{100 + n} Extra St",
                    "monthly_rent": 1000 + n,
                }
                for n in range(25)
            ],
        )
        await session.commit()

    result = await call("search_properties", sqlite_database, location="Austin, TX")

    total = len(expected_ids(city="Austin")) + 25
    assert result.data["count"] == 20
    assert result.data["total_matches"] == total
    assert result.data["truncated"] is True
    assert [p["monthly_rent"] for p in result.data["properties"]] == [1000 + n for n in range(20)]
    assert result.presentation is not None
    assert result.presentation.title == f"Cheapest 20 of {total} properties in Austin, TX"


async def test_search_rejects_bad_arguments(sqlite_database: Database) -> None:
    with pytest.raises(ToolArgumentError, match="min_price"):
        await call("search_properties", sqlite_database, location="Austin", min_price=3000, max_price=1000)
    with pytest.raises(ToolArgumentError, match="property_type"):
        await call("search_properties", sqlite_database, location="Austin", property_type="castle")
    unparseable = await call("search_properties", sqlite_database, location=" , ")
    assert not unparseable.ok
    assert unparseable.error is not None and "location" in unparseable.error


# -- get_property ----------------------------------------------------------------------------------


async def test_get_property_details_and_open_maintenance(database: Database) -> None:
    result = await call("get_property", database, property_id="p-1004")

    assert result.ok, result.error
    sample = next(p for p in SAMPLE_PROPERTIES if p["id"] == "P-1004")
    active = [
        r
        for r in SAMPLE_MAINTENANCE_REQUESTS
        if r["property_id"] == "P-1004" and r["status"] in ACTIVE_REQUEST_STATUSES
    ]
    assert active  # the sample data must give P-1004 an open request
    assert result.data["id"] == "P-1004"
    assert result.data["address"] == sample["address"]
    assert result.data["sqft"] == sample["sqft"]
    assert result.data["year_built"] == sample["year_built"]
    assert result.data["open_maintenance_requests"] == len(active)
    assert result.presentation is not None
    labels = {f.label: f.value for f in result.presentation.fields}
    assert labels["Open maintenance requests"] == str(len(active))
    assert labels["Rent"] == f"${sample['monthly_rent']:,}/mo"


async def test_get_property_unknown_id_is_a_failure_result(database: Database) -> None:
    result = await call("get_property", database, property_id="P-0000")
    assert not result.ok
    assert result.error == "No property with id 'P-0000'. Use search_properties to find ids."


# -- schemas ---------------------------------------------------------------------------------------


def _keywords(node: Any, parent_is_properties: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if not parent_is_properties:
                found.add(key)
            found |= _keywords(value, parent_is_properties=key in ("properties", "$defs") and not parent_is_properties)
    elif isinstance(node, list):
        for value in node:
            found |= _keywords(value)
    return found


@pytest.mark.parametrize("name", ALL_TOOLS)
def test_tool_schemas_are_strict(name: str) -> None:
    spec = registry.get(name)
    assert spec is not None
    function = spec.openai_schema()["function"]
    params = function["parameters"]

    assert function["strict"] is True
    assert params["additionalProperties"] is False
    assert set(params["required"]) == set(params["properties"]) != set()
    assert _keywords(params) <= STRICT_KEYWORDS, _keywords(params) - STRICT_KEYWORDS
    assert 20 < len(function["description"]) < 400


def test_tool_flags() -> None:
    specs = {name: registry.get(name) for name in ALL_TOOLS}
    for name in ("search_properties", "get_property", "list_maintenance_requests"):
        spec = specs[name]
        assert spec is not None and spec.read_only and not spec.risky
    for name in ("schedule_maintenance", "cancel_maintenance_request"):
        spec = specs[name]
        assert spec is not None and spec.risky and not spec.read_only and spec.describe is not None
    search = specs["search_properties"]
    assert search is not None and search.cache_ttl == 60


# -- Database --------------------------------------------------------------------------------------


async def _counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        properties = (await session.execute(select(func.count()).select_from(Property))).scalar_one()
        requests = (await session.execute(select(func.count()).select_from(MaintenanceRequest))).scalar_one()
    return properties, requests


EXPECTED_COUNTS = (len(SAMPLE_PROPERTIES), len(SAMPLE_MAINTENANCE_REQUESTS))


def test_sample_data_covers_the_brief() -> None:
    cities = {(p["city"], p["state"]) for p in SAMPLE_PROPERTIES}
    assert len(SAMPLE_PROPERTIES) >= 60
    assert len(cities) >= 6 and ("Austin", "TX") in cities
    assert len({p["id"] for p in SAMPLE_PROPERTIES}) == len(SAMPLE_PROPERTIES)
    statuses = {r["status"] for r in SAMPLE_MAINTENANCE_REQUESTS}
    assert {"open", "scheduled", "completed"} <= statuses


async def test_start_twice_does_not_duplicate(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.start()
        await db.start()
        assert await _counts(db) == EXPECTED_COUNTS
    finally:
        await db.close()


async def test_concurrent_start_from_two_databases_seeds_once(database_url: str) -> None:
    first, second = Database(database_url), Database(database_url)
    try:
        await asyncio.gather(first.start(), second.start())
        assert await _counts(first) == EXPECTED_COUNTS
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_start_without_seed_creates_empty_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.start(seed=False)
        assert await _counts(db) == (0, 0)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert {"properties", "maintenance_requests"} <= tables
        assert await db.ping()
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
    ],
)
def test_url_forms_are_normalised(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_url_rejects_other_schemes_and_hides_password() -> None:
    with pytest.raises(ValueError, match="mysql"):
        normalize_url("mysql://u@h/db")
    db = Database("postgresql://propbot:s3cret@db.example:5432/propbot?sslmode=require")
    assert "s3cret" not in db.describe_url()
    assert db.describe_url().startswith("postgresql+asyncpg://propbot:***@db.example:5432/propbot")
    assert db.url.query == {"ssl": "require"}


async def test_ping_is_false_when_nothing_listens() -> None:
    db = Database("postgresql://nobody@127.0.0.1:9/none")
    try:
        assert await db.ping() is False
    finally:
        await db.close()


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_database: Database) -> None:
    async with sqlite_database.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 30_000
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1


def test_strict_schema_drops_length_limits_but_validation_keeps_them() -> None:
    from pydantic import BaseModel, Field

    from tools.registry import strict_parameters

    class Args(BaseModel):
        note: str = Field(min_length=3, max_length=10, description="a short note")

    schema, strict = strict_parameters(Args)
    assert strict and "minLength" not in json.dumps(schema) and "maxLength" not in json.dumps(schema)
    assert schema["properties"]["note"]["description"] == "a short note"
    with pytest.raises(ValueError):
        Args.model_validate({"note": "x"})
