"""A conversation's history under its lock: one turn at a time, across processes.

`locked()` takes the lock and reads the history in one round trip, keeps the lock alive while the turn runs,
and `save()` trims the history to its budget and writes it, releasing the lock in the same round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.core.history import Message, TokenCounter, sanitize, trim
from bot.errors import Busy, StoreUnavailable
from bot.store.base import Conversations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockTimes:
    ttl: float  # seconds the lock lives unless refreshed
    wait: float  # seconds a turn waits for a busy conversation before giving up


class Transcript:
    def __init__(self, store: Conversations, counter: TokenCounter, budget: int, times: LockTimes) -> None:
        self.store = store
        self.counter = counter
        self.budget = budget
        self.times = times

    @contextlib.asynccontextmanager
    async def locked(self, conversation: str) -> AsyncIterator[tuple[str, list[Message]]]:
        """Hold the conversation's lock (its TTL refreshed) and yield (lock token, history)."""
        deadline = time.monotonic() + self.times.wait
        pause = 0.02
        while True:
            token, history = await self.store.lock_and_load(conversation, self.times.ttl)
            if token is not None:
                break
            if time.monotonic() >= deadline:
                raise Busy(conversation)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        keeper = asyncio.create_task(self._keep(conversation, token))
        released = False
        try:
            yield token, history
            released = True  # save(..., token) released it in the same round trip as the write
        finally:
            keeper.cancel()
            if not released:
                with contextlib.suppress(StoreUnavailable):
                    await self.store.release_lock(conversation, token)

    async def save(self, conversation: str, history: list[Message], token: str | None) -> None:
        kept = trim(sanitize(history), self.budget, self.counter)
        await self.store.save_history(conversation, kept, release_token=token)

    async def _keep(self, conversation: str, token: str) -> None:
        ttl = self.times.ttl
        with contextlib.suppress(StoreUnavailable):
            while True:
                await asyncio.sleep(ttl / 3)
                if not await self.store.extend_lock(conversation, token, ttl):
                    log.warning("lost the lock of %s during a long turn", conversation)
                    return
