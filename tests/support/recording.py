"""A platform stand-in for tests of the core: it records what the core delivers (the core is what is under test)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bot.types import Approval, DecisionResult, Incoming, Reply, TextReply


class RecordingResponder:
    def __init__(self) -> None:
        self.delivered: list[tuple[Incoming, list[Reply]]] = []

    @contextlib.asynccontextmanager
    async def working(self, msg: Incoming) -> AsyncIterator[None]:
        yield

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        self.delivered.append((msg, replies))

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        return None

    def texts(self) -> list[str]:
        return [r.text for _, replies in self.delivered for r in replies if isinstance(r, TextReply)]
