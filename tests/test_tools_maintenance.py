"""Maintenance tools against SQLite and PostgreSQL: listing, idempotent scheduling, cancelling."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import tools.maintenance
from tests.test_tools_properties import call, context
from tools import ToolArgumentError, builtin_tools
from tools.db import Database
from tools.sample_data import SAMPLE_MAINTENANCE_REQUESTS
from tools.tables import MaintenanceRequest

registry = builtin_tools()

TOMORROW = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()


async def _requests(db: Database, **match: str) -> list[MaintenanceRequest]:
    query = select(MaintenanceRequest)
    for column, value in match.items():
        query = query.where(getattr(MaintenanceRequest, column) == value)
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def _count(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(MaintenanceRequest))).scalar_one()


# -- list ------------------------------------------------------------------------------------------


async def test_list_filters_by_property_and_status(database: Database) -> None:
    everything = await call("list_maintenance_requests", database)
    assert everything.ok
    assert everything.data["count"] == len(SAMPLE_MAINTENANCE_REQUESTS)
    created = [r["created_at"] for r in everything.data["requests"]]
    assert created == sorted(created, reverse=True)

    open_ones = await call("list_maintenance_requests", database, status="open")
    assert {r["request_id"] for r in open_ones.data["requests"]} == {
        r["id"] for r in SAMPLE_MAINTENANCE_REQUESTS if r["status"] == "open"
    }

    for_one = await call("list_maintenance_requests", database, property_id="P-1004", status=None)
    assert {r["request_id"] for r in for_one.data["requests"]} == {
        r["id"] for r in SAMPLE_MAINTENANCE_REQUESTS if r["property_id"] == "P-1004"
    }
    assert for_one.presentation is not None
    assert for_one.presentation.title == "1 maintenance request for 1905 Manor Rd"
    assert len(for_one.presentation.items) == 1


async def test_long_descriptions_are_cut_at_a_word_with_an_ellipsis(sqlite_database: Database) -> None:
    words = "The kitchen sink drips constantly and the cabinet underneath has started to swell from the water"
    created = await call(
        "schedule_maintenance", sqlite_database, key="k-long", property_id="P-1001", issue_type="plumbing",
        priority="low", description=f"{words}. {words}.", preferred_date=None,
    )  # fmt: skip
    listed = await call("list_maintenance_requests", sqlite_database, property_id="P-1001")
    assert listed.presentation is not None
    [title] = [i.title for i in listed.presentation.items if i.title.startswith(created.data["request_id"])]
    description = title.split(" · ", 1)[1]
    assert description.endswith("…") and len(description) <= 80
    assert words.startswith(description.removesuffix("…")) and words[len(description) - 1] == " "
    [item] = [r for r in listed.data["requests"] if r["request_id"] == created.data["request_id"]]
    assert item["description"].endswith("…") and len(item["description"]) <= 160
    assert f"{words}. {words}.".startswith(item["description"].removesuffix("…") + " ")


async def test_list_unknown_property_is_a_failure_result(database: Database) -> None:
    result = await call("list_maintenance_requests", database, property_id="P-4242")
    assert not result.ok
    assert result.error is not None and "P-4242" in result.error


# -- schedule --------------------------------------------------------------------------------------


async def test_schedule_creates_a_scheduled_request(database: Database) -> None:
    result = await call(
        "schedule_maintenance",
        database,
        key="approval-1",
        property_id="P-1001",
        issue_type="plumbing",
        priority="high",
        description="  Shower valve drips constantly.  ",
        preferred_date=TOMORROW,
    )

    assert result.ok, result.error
    assert result.data["status"] == "scheduled"
    assert result.data["property_id"] == "P-1001"
    assert result.data["preferred_date"] == TOMORROW
    [row] = await _requests(database, id=result.data["request_id"])
    assert row.status == "scheduled"
    assert row.created_by == "slack:T1:U1"
    assert row.idempotency_key == "approval-1"
    assert row.description == "Shower valve drips constantly."
    assert row.created_at.tzinfo is not None
    assert result.presentation is not None
    fields = {f.label: f.value for f in result.presentation.fields}
    assert fields["Status"] == "Scheduled"
    assert fields["Priority"] == "High"
    assert fields["Property"] == "1208 S Congress Ave, Austin"


async def test_schedule_unknown_property_is_a_failure_and_writes_nothing(database: Database) -> None:
    before = await _count(database)
    result = await call(
        "schedule_maintenance",
        database,
        key="approval-2",
        property_id="P-9999",
        issue_type="hvac",
        priority="low",
        description="Filter change",
        preferred_date=None,
    )
    assert not result.ok
    assert result.error == "No property with id 'P-9999'. Use search_properties to find ids."
    assert await _count(database) == before


async def test_schedule_same_key_twice_returns_the_same_request(database: Database) -> None:
    args = {"property_id": "P-1010", "issue_type": "appliance", "priority": "low", "description": "Oven light out"}
    first = await call("schedule_maintenance", database, key="approval-3", **args)
    second = await call("schedule_maintenance", database, key="approval-3", **args)
    assert first.ok and second.ok
    assert first.data == second.data
    assert len(await _requests(database, idempotency_key="approval-3")) == 1


async def test_schedule_is_idempotent_under_twenty_concurrent_calls(database: Database) -> None:
    before = await _count(database)
    results = await asyncio.gather(
        *(
            call(
                "schedule_maintenance",
                database,
                key="approval-race",
                property_id="P-1020",
                issue_type="electrical",
                priority="emergency",
                description="Sparks from the breaker panel",
            )
            for _ in range(20)
        )
    )
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len({r.data["request_id"] for r in results}) == 1
    assert len(await _requests(database, idempotency_key="approval-race")) == 1
    assert await _count(database) == before + 1


async def test_schedule_without_key_creates_separate_requests(database: Database) -> None:
    args = {"property_id": "P-1030", "issue_type": "other", "priority": "medium", "description": "Mailbox lock jammed"}
    first = await call("schedule_maintenance", database, **args)
    second = await call("schedule_maintenance", database, **args)
    assert first.data["request_id"] != second.data["request_id"]
    rows = await _requests(database, property_id="P-1030", description="Mailbox lock jammed")
    assert len(rows) == 2
    assert all(r.idempotency_key for r in rows)


async def test_schedule_validates_description_and_date(sqlite_database: Database) -> None:
    base = {"property_id": "P-1001", "issue_type": "plumbing", "priority": "low"}
    with pytest.raises(ToolArgumentError, match="description"):
        await call("schedule_maintenance", sqlite_database, description="ab", **base)
    with pytest.raises(ToolArgumentError, match="description"):
        await call("schedule_maintenance", sqlite_database, description="x" * 2001, **base)
    with pytest.raises(ToolArgumentError, match="preferred_date"):
        await call("schedule_maintenance", sqlite_database, description="Leak", preferred_date="soon", **base)

    past = await call("schedule_maintenance", sqlite_database, description="Leak", preferred_date="2020-01-01", **base)
    assert not past.ok
    assert past.error is not None and "in the past" in past.error


async def test_schedule_approval_card_describes_the_property(sqlite_database: Database) -> None:
    spec = registry.get("schedule_maintenance")
    assert spec is not None
    args = spec.parse_arguments(
        '{"property_id": "P-1001", "issue_type": "hvac", "priority": "medium",'
        ' "description": "No cooling", "preferred_date": "2031-07-01"}'
    )
    title, details = await spec.summarise(args, context(sqlite_database))
    assert title == "Schedule maintenance"
    assert [(d.label, d.value) for d in details] == [
        ("Property", "1208 S Congress Ave, Austin"),
        ("Issue type", "Hvac"),
        ("Priority", "Medium"),
        ("Description", "No cooling"),
        ("Preferred date", "2031-07-01"),
    ]

    unknown = spec.parse_arguments(
        '{"property_id": "P-0001", "issue_type": "hvac", "priority": "medium",'
        ' "description": "No cooling", "preferred_date": null}'
    )
    _, details = await spec.summarise(unknown, context(sqlite_database))
    assert details[0].value == "unknown property P-0001"


# -- cancel ----------------------------------------------------------------------------------------


async def test_cancel_open_request_then_refuse_a_second_cancel(database: Database) -> None:
    result = await call("cancel_maintenance_request", database, key="approval-c1", request_id="MR-5001")

    assert result.ok, result.error
    assert result.data["status"] == "cancelled"
    assert result.data["cancelled_by"] == "slack:T1:U1"
    [row] = await _requests(database, id="MR-5001")
    assert row.status == "cancelled"
    assert row.cancelled_by == "slack:T1:U1"
    assert row.cancelled_at is not None

    replay = await call("cancel_maintenance_request", database, key="approval-c1", request_id="MR-5001")
    assert replay.ok
    assert replay.data == result.data

    other = await call("cancel_maintenance_request", database, key="approval-c2", request_id="mr-5001")
    assert not other.ok
    assert other.error is not None and "already cancelled" in other.error


async def test_cancel_refuses_a_completed_request(database: Database) -> None:
    completed = next(r for r in SAMPLE_MAINTENANCE_REQUESTS if r["status"] == "completed")
    result = await call("cancel_maintenance_request", database, key="approval-c3", request_id=completed["id"])

    assert not result.ok
    assert result.error is not None and "already completed" in result.error
    [row] = await _requests(database, id=completed["id"])
    assert row.status == "completed"
    assert row.cancelled_by is None


async def test_cancel_unknown_request_is_a_failure_result(database: Database) -> None:
    result = await call("cancel_maintenance_request", database, key="approval-c4", request_id="MR-0000")
    assert not result.ok
    assert result.error is not None and "MR-0000" in result.error


async def test_concurrent_cancels_with_different_keys_succeed_once(database: Database) -> None:
    results = await asyncio.gather(
        *(call("cancel_maintenance_request", database, key=f"approval-k{n}", request_id="MR-5002") for n in range(10))
    )
    assert sum(r.ok for r in results) == 1
    [row] = await _requests(database, id="MR-5002")
    assert row.status == "cancelled"


async def test_scheduled_request_can_be_cancelled(database: Database) -> None:
    scheduled = await call(
        "schedule_maintenance",
        database,
        key="approval-s",
        property_id="P-1040",
        issue_type="appliance",
        priority="medium",
        description="Washer leaks during the spin cycle",
    )
    cancelled = await call(
        "cancel_maintenance_request", database, key="approval-x", request_id=scheduled.data["request_id"]
    )
    assert cancelled.ok, cancelled.error
    after = await call("list_maintenance_requests", database, property_id="P-1040", status="cancelled")
    assert [r["request_id"] for r in after.data["requests"]] == [scheduled.data["request_id"]]


async def test_schedule_answers_with_the_winner_after_losing_the_insert_race(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = {"property_id": "P-1050", "issue_type": "hvac", "priority": "high", "description": "Heat pump iced"}
    winner = await call("schedule_maintenance", database, key="approval-lost", **args)

    # Make the pre-check miss once, as if the winner committed just after it: the INSERT must then
    # hit the UNIQUE key and the tool must answer with the winner's request, not an error.
    real_by_key = tools.maintenance._by_key
    misses = [None]

    async def late_by_key(session: AsyncSession, key: str) -> MaintenanceRequest | None:
        return misses.pop() if misses else await real_by_key(session, key)

    monkeypatch.setattr(tools.maintenance, "_by_key", late_by_key)
    loser = await call("schedule_maintenance", database, key="approval-lost", **args)

    assert not misses  # the pre-check really was bypassed
    assert loser.ok, loser.error
    assert loser.data["request_id"] == winner.data["request_id"]
    assert len(await _requests(database, idempotency_key="approval-lost")) == 1


async def test_cancel_approval_card_shows_the_request(sqlite_database: Database) -> None:
    spec = registry.get("cancel_maintenance_request")
    assert spec is not None
    title, details = await spec.summarise(spec.parse_arguments('{"request_id": "MR-5001"}'), context(sqlite_database))
    values = {d.label: d.value for d in details}
    assert title == "Cancel maintenance request"
    assert values["Request"] == "MR-5001"
    assert values["Property"] == "1208 S Congress Ave, Austin"
    assert values["Status"] == "Open"

    _, unknown = await spec.summarise(spec.parse_arguments('{"request_id": "MR-1"}'), context(sqlite_database))
    assert unknown[0].value == "unknown request MR-1"
