"""The transactional outbox: every effect propbot has on the world outside its database (a notice to the maintenance
team's channel, a welcome e-mail) is a row written in the same transaction as the change that causes it, then
delivered by any process, at least once, and marked done after delivery.

A row's id names the effect ("notice:MR-5001:scheduled", "email:<run>:welcome"), so recording it again (a re-run
step, a replayed approval) changes nothing. Delivery claims a row with one conditional UPDATE, so of the processes
that look at once exactly one holds it, for `CLAIM_SECONDS`; a process that dies holding it leaves the row to be
claimed again when the claim runs out. A failed attempt makes the row due again later (doubling, up to
`BACKOFF_CAP`); after `MAX_ATTEMPTS`, or on an error whose `permanent` attribute is true (a refused address, a
channel that is gone: trying again cannot help), it is `failed` and logged.
`attempts` tells a deliverer whether an earlier attempt may have got through (it then looks before sending again,
where the receiving side lets it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tools.db import Database
from tools.tables import OutboxRow

log = logging.getLogger(__name__)

# The kinds of effect, each delivered by its own deliverer (bot/ingress/courier.py).
TEAM_NOTICE: Final = "team_notice"  # a TeamNotice: fanned out into a TEAM_POST per channel it goes to
TEAM_POST: Final = "team_post"  # {"platform", "channel", "notice"}
EMAIL: Final = "email"  # an OutboundMessage's fields

CLAIM_SECONDS: Final = 60.0  # longer than any one delivery takes; a dead holder's row is taken over after this
BACKOFF: Final = 2.0
BACKOFF_CAP: Final = 600.0
MAX_ATTEMPTS: Final = 15  # about 1.5 hours of retries at the cap


@dataclass(frozen=True)
class Effect:
    """One claimed row, as a deliverer sees it. `attempts` counts this one: above 1, an earlier attempt may have
    got through before its process stopped."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int


# What a deliverer returns: the receipt to keep (a message ts, a Message-ID), or None.
Deliver = Callable[[Effect], Awaitable[str | None]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def record(session: AsyncSession, effect_id: str, kind: str, payload: dict[str, Any]) -> None:
    """Add the effect to the caller's transaction, unless a row with its id exists (then nothing changes). The
    caller commits: the effect is recorded exactly when the change that causes it is."""
    now = _now()
    row = {
        "id": effect_id,
        "kind": kind,
        "payload": json.dumps(payload, default=str),
        "status": "pending",
        "attempts": 0,
        "due_at": now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    statement = (postgres_insert if dialect == "postgresql" else sqlite_insert)(OutboxRow).values(**row)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))


class Outbox:
    """Claims and settles rows of the outbox table for whoever delivers them."""

    def __init__(self, db: Database, *, claim: float = CLAIM_SECONDS) -> None:
        self.db = db
        self.claim_for = dt.timedelta(seconds=claim)

    async def due(self, limit: int = 50) -> list[str]:
        """Ids of rows that may be claimed now, oldest first."""
        query = (
            select(OutboxRow.id)
            .where(OutboxRow.status.in_(("pending", "sending")), OutboxRow.due_at <= _now())
            .order_by(OutboxRow.due_at)
            .limit(limit)
        )
        async with self.db.session() as session:
            return list((await session.execute(query)).scalars())

    async def claim(self, effect_id: str) -> Effect | None:
        """The row, held by this process for its claim time, or None when it is done, failed, not due, or held."""
        now = _now()
        claimable = or_(OutboxRow.status == "pending", OutboxRow.status == "sending")
        async with self.db.session() as session:
            won = (
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == effect_id, claimable, OutboxRow.due_at <= now)
                    .values(
                        status="sending",
                        attempts=OutboxRow.attempts + 1,
                        due_at=now + self.claim_for,
                    )
                    .returning(OutboxRow.kind, OutboxRow.payload, OutboxRow.attempts)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            await session.commit()
        if won is None:
            return None
        return Effect(effect_id, won.kind, json.loads(won.payload), won.attempts)

    async def deliver(self, effect_id: str, deliver: Deliver) -> OutboxRow | None:
        """Claim the row and run `deliver` on it: done with its receipt, due again later after an error, failed
        when it cannot be delivered. The row as it is afterwards (None when there is no such row)."""
        effect = await self.claim(effect_id)
        if effect is not None:
            try:
                receipt = await deliver(effect)
            except Exception as exc:  # an outage or a bug: the row stays, to be tried again, unless it cannot help
                log.warning("outbox %s: attempt %d failed (%s)", effect.id, effect.attempts, type(exc).__name__)
                final = effect.attempts >= MAX_ATTEMPTS or getattr(exc, "permanent", False) is True
                await self._settle(effect, "failed" if final else "pending", error=f"{type(exc).__name__}: {exc}")
            else:
                # Said before the mark: a process that stops between the two leaves the row to be delivered again.
                log.info("outbox %s: delivered on attempt %d", effect.id, effect.attempts)
                await self._settle(effect, "done", receipt=receipt)
        async with self.db.session() as session:
            return await session.get(OutboxRow, effect_id)

    async def _settle(
        self, effect: Effect, status: str, *, receipt: str | None = None, error: str | None = None
    ) -> None:
        now = _now()
        values: dict[str, Any] = {"status": status, "receipt": receipt, "error": error}
        if status == "done":
            values["done_at"] = now
        elif status == "pending":
            values["due_at"] = now + dt.timedelta(seconds=min(BACKOFF * 2 ** (effect.attempts - 1), BACKOFF_CAP))
        else:
            log.error("outbox %s (%s) given up after %d attempt(s): %s", effect.id, effect.kind, effect.attempts, error)
        async with self.db.session() as session:
            # Only the holder of this attempt settles it: a row taken over after a stalled claim is not undone.
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == effect.id, OutboxRow.attempts == effect.attempts, OutboxRow.status == "sending")
                .values(**values)
            )
            await session.commit()

    async def fan_out(self, effect: Effect, children: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Replace a claimed row by one row per (id, kind, payload), in one transaction: a notice becomes a post
        per channel, each then delivered and retried on its own."""
        async with self.db.session() as session:
            for child_id, kind, payload in children:
                await record(session, child_id, kind, payload)
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == effect.id, OutboxRow.attempts == effect.attempts)
                .values(status="done", done_at=_now(), receipt=f"{len(children)} post(s)")
            )
            await session.commit()
