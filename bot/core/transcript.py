"""A conversation's history under its lock: one turn at a time, across processes.

`locked()` takes the lock and reads the history (and, for a delivery, whether its turn already ran) in one
round trip, and keeps the lock alive while the turn runs, through transient store errors. `save()` trims the
history to its budget and writes it, with the turn's outcome, releasing the lock in the same round trip, and
only while the lock is still ours: a turn whose lock was lost writes nothing (LockLost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.core.history import Message, TokenCounter, sanitize, trim
from bot.errors import Busy, LockLost, StoreUnavailable
from bot.store.base import Conversations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockTimes:
    ttl: float  # seconds the lock lives unless refreshed (the keeper refreshes it every ttl/3)
    wait: float  # seconds a turn waits for a busy conversation before giving up
    outcome: float = 86400.0  # seconds a delivery's recorded outcome is kept (as long as its dedupe mark)


@dataclass
class Hold:
    """The lock of one conversation, held by one turn."""

    token: str
    history: list[Message]
    # What this delivery's turn answered, when it already ran (a turn taken over from a dead worker).
    finished: str | None = None
    # Set when the lock could not be kept alive: another turn may hold it now, so this one must stop.
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    released: bool = False  # save() wrote the history and released the lock

    def check(self) -> None:
        if self.lost.is_set():
            raise LockLost("the conversation lock was lost during the turn")


class Transcript:
    def __init__(self, store: Conversations, counter: TokenCounter, budget: int, times: LockTimes) -> None:
        self.store = store
        self.counter = counter
        self.budget = budget
        self.times = times

    @contextlib.asynccontextmanager
    async def locked(self, conversation: str, delivery: str | None = None) -> AsyncIterator[Hold]:
        """Hold the conversation's lock (its TTL refreshed) while the block runs."""
        deadline = time.monotonic() + self.times.wait
        pause = 0.02
        while True:
            got = await self.store.lock_and_load(conversation, self.times.ttl, delivery)
            if got.token is not None:
                break
            if time.monotonic() >= deadline:
                raise Busy(conversation)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        hold = Hold(got.token, got.history, got.finished)
        keeper = asyncio.create_task(self._keep(conversation, hold))
        try:
            yield hold
        finally:
            keeper.cancel()
            if not hold.released:  # save() released it in the same round trip as the write
                with contextlib.suppress(StoreUnavailable):
                    await self.store.release_lock(conversation, hold.token)

    async def save(self, conversation: str, hold: Hold, *, outcome: tuple[str, str] | None = None) -> None:
        """Write the history (and `outcome` = (delivery, replies JSON)), releasing the lock; LockLost when the
        lock is no longer ours, and then nothing was written."""
        hold.check()
        kept = trim(sanitize(hold.history), self.budget, self.counter)
        finished = (outcome[0], "s|" + outcome[1], self.times.outcome) if outcome is not None else None
        await self.store.save_history(conversation, kept, release_token=hold.token, finished=finished)
        hold.released = True

    async def _keep(self, conversation: str, hold: Hold) -> None:
        """Refresh the lock every ttl/3. A store error is retried until the lock would have expired: one
        dropped connection must not end the refresher and let a second turn in beside this one."""
        ttl = self.times.ttl
        good_until = time.monotonic() + ttl
        while True:
            await asyncio.sleep(ttl / 3 if time.monotonic() + ttl / 3 < good_until else max(0.05, ttl / 10))
            try:
                if not await self.store.extend_lock(conversation, hold.token, ttl):
                    break
                good_until = time.monotonic() + ttl
            except StoreUnavailable:
                if time.monotonic() < good_until:
                    continue
                break
        log.warning("lost the lock of %s during a long turn; the turn stops without saving", conversation)
        hold.lost.set()
