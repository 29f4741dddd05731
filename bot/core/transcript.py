"""A conversation's history, shared by turns that may overlap: each reads it when it starts and appends its own
exchange when it ends.

`open()` reads the history (and, for a delivery, whether its turn already ran) in one round trip; nothing is held
while the turn runs, so ten mentions in one channel run at once. `append()` writes what the turn added (the user's
message, the calls and results, the answer: a whole unit) after whatever the history holds *now*, by
compare-and-set on the history's version, reading again and retrying when another turn's append got there first.
So overlapping turns both land whole, in the order they finished, and the history is a valid request at every
moment; the delivery's outcome is recorded in the same write, and a second run of the same delivery writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bot.core.history import Message, TokenCounter, sanitize, trim
from bot.errors import StoreUnavailable
from bot.store.base import Conversations

log = logging.getLogger(__name__)

# A history over its budget is cut to this share of it, not to just under it: the oldest part of a conversation is
# its requests' cached prefix (the provider's prompt cache), and cutting a little every turn would move that
# prefix every turn; cut deep once, it holds for many turns.
TRIM_TO: Final = 0.6
# Appends that lost the race to another turn's, before giving up: dozens of turns of one channel finishing in the
# same few milliseconds still land (each retry is one round trip, after a short random pause).
APPEND_ATTEMPTS = 50


@dataclass
class Opened:
    """A conversation's history as a turn found it; the turn appends its exchange to `history` as it goes."""

    history: list[Message]
    version: str
    # What this delivery's turn answered, when it already ran (a turn taken over from a dead worker).
    finished: str | None = None
    start: int = 0  # len(history) when read: the turn's own exchange is history[start:]

    @property
    def added(self) -> list[Message]:
        return self.history[self.start :]


class Transcript:
    def __init__(self, store: Conversations, counter: TokenCounter, budget: int, outcome_ttl: float) -> None:
        self.store = store
        self.counter = counter
        self.budget = budget  # tokens the stored history may hold
        self.outcome_ttl = outcome_ttl  # seconds a delivery's recorded outcome is kept (as long as its dedupe mark)

    async def open(self, conversation: str, delivery: str | None = None) -> Opened:
        loaded = await self.store.load_history(conversation, delivery)
        return Opened(loaded.history, loaded.version, loaded.finished, len(loaded.history))

    async def append(
        self,
        conversation: str,
        opened: Opened,
        *,
        outcome: tuple[str, str] | None = None,
        already: Callable[[list[Message]], bool] | None = None,
    ) -> str | None:
        """Append the turn's exchange to the history as it is now, trimmed to the budget, recording `outcome` =
        (delivery, replies JSON) in the same write. None when written (or skipped because `already` says the
        history holds it); the recorded outcome when another run of the same delivery recorded first."""
        added = opened.added
        base, version = opened.history[: opened.start], opened.version
        finished = (outcome[0], "s|" + outcome[1], self.outcome_ttl) if outcome is not None else None
        for attempt in range(APPEND_ATTEMPTS):
            kept = self._kept(sanitize([*base, *added]))
            written = await self.store.append_history(conversation, kept, version, finished)
            if written.written:
                return None
            if written.finished is not None:
                # Our own write, whose reply was lost and which redis-py sent again, reads as "already finished"
                # with this very outcome: then it is written. Another run's outcome is returned.
                return None if finished is not None and written.finished == finished[1] else written.finished
            # Another turn of this conversation appended first: put this exchange after it.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            fresh = await self.store.load_history(conversation)
            base, version = fresh.history, fresh.version
            if already is not None and already(base):
                return None
        log.warning("history of %s: %d appends in a row lost to other turns", conversation, APPEND_ATTEMPTS)
        raise StoreUnavailable(f"could not append to the history of {conversation}")

    def _kept(self, history: list[Message]) -> list[Message]:
        if self.counter.messages(history) <= self.budget:
            return history
        return trim(history, int(self.budget * TRIM_TO), self.counter)
