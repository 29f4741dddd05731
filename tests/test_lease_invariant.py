"""No two live leases of one unit overlap, whatever the timing: two onboardings of P-1001 for overlapping dates run
by two real processes at the same moment leave one lease and one plain refusal, and a run resumed after another
took the unit meanwhile creates nothing. On SQLite and on PostgreSQL; on PostgreSQL the database refuses an
overlapping lease by itself too."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from tests.support.databases import fresh_postgres_database, require_postgres
from tests.support.processes import ROOT
from tests.support.scripts import JANE
from tools.db import Database
from tools.tables import LIVE_LEASE_STATUSES, Lease

JOHN = {**JANE, "tenant_name": "John Roe", "email": "john.roe@example.com", "start_date": "2027-03-01"}


async def onboard(url: str, *runs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run in its own `python` process, all released at the same moment once every one has its database open;
    their outcomes in order."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.onboard_process",
            url,
            run_id,
            json.dumps(request),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for run_id, request in runs
    ]
    for process in processes:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 60) == b"ready\n"
    for process in processes:  # every one released before any is waited for
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.close()
    outcomes = []
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        outcomes.append(json.loads(out.decode().strip().splitlines()[-1]))
    return outcomes


async def live_leases(db: Database, property_id: str) -> int:
    async with db.session() as session:
        query = select(func.count()).where(Lease.property_id == property_id, Lease.status.in_(LIVE_LEASE_STATUSES))
        return int((await session.execute(query)).scalar_one())


async def test_two_overlapping_onboardings_at_once_leave_one_lease_and_one_refusal(
    database: Database, tmp_path: Path
) -> None:
    url = database.url.render_as_string(hide_password=False)
    jane, john = await onboard(url, ("run-jane", JANE), ("run-john", JOHN))
    assert [jane["ok"], john["ok"]].count(True) == 1, (jane, john)
    refused = jane if not jane["ok"] else john
    winner = "John Roe" if refused is jane else "Jane Doe"
    # Refused by step 1 (the other run was already done) or by step 3 (both passed step 1): in words either way.
    assert "P-1001" in refused["error"] and "leased" in refused["error"], refused
    if "while this request waited" in refused["error"]:
        assert f"leased to {winner} from" in refused["error"]
    assert await live_leases(database, "P-1001") == 1


async def _refuse_tenant_insert(db: Database, name: str, on: bool) -> None:
    """A database that fails the insert of `name`'s tenant record, as a transient error would (or no longer)."""
    async with db.engine.begin() as conn:
        if db.dialect == "sqlite":
            await conn.execute(
                text(
                    f"CREATE TRIGGER refuse_tenant BEFORE INSERT ON tenants WHEN NEW.full_name = '{name}' "
                    "BEGIN SELECT RAISE(ABORT, 'database hiccup'); END"
                )
                if on
                else text("DROP TRIGGER refuse_tenant")
            )
            return
        if on:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse_tenant() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.full_name = '{name}' THEN RAISE EXCEPTION 'database hiccup'; END IF; RETURN NEW; END "
                    "$$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_tenant BEFORE INSERT ON tenants FOR EACH ROW "
                    "EXECUTE FUNCTION refuse_tenant()"
                )
            )
        else:
            await conn.execute(text("DROP TRIGGER refuse_tenant ON tenants"))


async def test_a_run_resumed_after_another_took_the_unit_creates_no_second_lease(
    database: Database, tmp_path: Path
) -> None:
    url = database.url.render_as_string(hide_password=False)
    await _refuse_tenant_insert(database, "Jane Doe", on=True)
    [stopped] = await onboard(url, ("run-jane", JANE))
    assert not stopped["ok"] and "step 2 of 4" in stopped["error"], stopped
    await _refuse_tenant_insert(database, "Jane Doe", on=False)

    [john] = await onboard(url, ("run-john", JOHN))
    assert john["ok"], john
    [resumed] = await onboard(url, ("run-jane", JANE))  # what retry_onboarding does: resume from step 2

    assert not resumed["ok"]
    assert "step 3 of 4" in resumed["error"]
    assert "P-1001 was leased to John Roe from 2027-03-01 to 2028-03-01 while this request waited" in resumed["error"]
    assert "no lease was created" in resumed["error"]
    assert await live_leases(database, "P-1001") == 1


@pytest.fixture
async def postgres_database() -> AsyncIterator[Database]:
    async with fresh_postgres_database(await require_postgres()) as url:
        db = Database(url)
        try:
            await db.start()
            yield db
        finally:
            await db.close()


@pytest.mark.postgres
async def test_postgresql_itself_refuses_an_overlapping_live_lease(postgres_database: Database) -> None:
    """SQLite has no exclusion constraint: the serialised lease step alone holds the invariant there."""
    database = postgres_database
    row = {
        "tenant_id": "TN-3001",
        "property_id": "P-1004",  # leased to TN-3001 from 2025-02-01 for 12 months in the sample data
        "start_date": dt.date(2025, 6, 1),
        "end_date": dt.date(2026, 6, 1),
        "monthly_rent": 2850,
        "deposit": 0,
        "created_at": dt.datetime.now(dt.UTC),
    }
    async with database.engine.begin() as conn:
        await conn.execute(insert(Lease).values(id="LS-ENDED", status="ended", **row))  # an ended one may overlap
    with pytest.raises(IntegrityError, match="ex_leases_no_overlap"):
        async with database.engine.begin() as conn:
            await conn.execute(insert(Lease).values(id="LS-OVERLAP", status="pending", **row))
