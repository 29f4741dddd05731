"""The outbox's own rules, on SQLite and PostgreSQL: a record is made once per id and only with its transaction,
of many claimers one wins, a failed attempt comes back later (doubling), an error that says trying again cannot
help ends it, and a holder that stalled cannot settle a row another process took over."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select, update

from bot.errors import Undeliverable
from tools import outbox
from tools.db import Database
from tools.outbox import MAX_ATTEMPTS, Effect, Outbox
from tools.tables import OutboxRow


async def recorded(db: Database, effect_id: str = "e-1", commit: bool = True) -> None:
    async with db.session() as session:
        await outbox.record(session, effect_id, "test", {"n": 1})
        if commit:
            await session.commit()


async def row(db: Database, effect_id: str = "e-1") -> OutboxRow:
    async with db.session() as session:
        found = await session.get(OutboxRow, effect_id, populate_existing=True)
    assert found is not None
    return found


async def make_due(db: Database, effect_id: str = "e-1") -> None:
    async with db.session() as session:
        due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await session.execute(update(OutboxRow).where(OutboxRow.id == effect_id).values(due_at=due))
        await session.commit()


async def test_a_record_exists_only_with_its_transaction_and_once_per_id(database: Database) -> None:
    await recorded(database, commit=False)  # the change it belongs to was rolled back
    assert await Outbox(database).due() == []
    await recorded(database)
    await recorded(database)  # the same effect recorded again: a replayed call
    async with database.session() as session:
        assert len((await session.execute(select(OutboxRow))).scalars().all()) == 1
    assert await Outbox(database).due() == ["e-1"]


async def test_of_many_claimers_one_wins_and_a_done_row_is_not_claimed_again(database: Database) -> None:
    await recorded(database)
    claims = await asyncio.gather(*(Outbox(database).claim("e-1") for _ in range(8)))
    [won] = [c for c in claims if c is not None]
    assert won.attempts == 1 and won.payload == {"n": 1}
    sent: list[str] = []

    async def deliver(effect: Effect) -> str:
        sent.append(effect.id)
        return "receipt-1"

    await make_due(database)  # the claim ran out: another process takes it over
    after = await Outbox(database).deliver("e-1", deliver)
    assert after is not None and after.status == "done" and after.receipt == "receipt-1" and after.attempts == 2
    assert await Outbox(database).deliver("e-1", deliver) is not None
    assert sent == ["e-1"]


async def test_a_failed_attempt_comes_back_later_and_a_permanent_one_ends_it(database: Database) -> None:
    await recorded(database)
    errors: list[Exception] = [ConnectionError("slack is away"), Undeliverable("channel_not_found")]

    async def deliver(effect: Effect) -> str:
        raise errors.pop(0)

    box = Outbox(database)
    first = await box.deliver("e-1", deliver)
    assert first is not None and first.status == "pending" and "slack is away" in (first.error or "")
    assert first.due_at > dt.datetime.now(dt.UTC)  # not before the backoff
    assert await box.due() == []
    await make_due(database)
    second = await box.deliver("e-1", deliver)
    assert second is not None and second.status == "failed" and "channel_not_found" in (second.error or "")


async def test_retries_end_after_the_last_attempt(database: Database) -> None:
    await recorded(database)

    async def deliver(effect: Effect) -> str:
        raise TimeoutError

    box = Outbox(database)
    for _ in range(MAX_ATTEMPTS):
        await make_due(database)
        await box.deliver("e-1", deliver)
    final = await row(database)
    assert final.status == "failed" and final.attempts == MAX_ATTEMPTS


async def test_a_stalled_holder_cannot_settle_a_row_another_process_took_over(database: Database) -> None:
    await recorded(database)
    box = Outbox(database)
    stalled = await box.claim("e-1")
    assert stalled is not None
    await make_due(database)
    taken: dict[str, Any] = {}

    async def deliver(effect: Effect) -> str:
        taken["attempt"] = effect.attempts
        return "second"

    await box.deliver("e-1", deliver)
    await box._settle(stalled, "pending", error="the stalled one finally failed")  # late, and ignored
    final = await row(database)
    assert taken == {"attempt": 2} and final.status == "done" and final.receipt == "second"
