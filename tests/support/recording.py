"""A platform stand-in for tests of the core: it records what the core delivers (the core is what is under test)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bot.types import Approval, DecisionResult, Incoming, Progress, Reply, TeamNotice, TextReply


class RecordingLive:
    """What one turn showed while it ran: its progress steps and streamed text, in order, then its replies."""

    def __init__(self, responder: RecordingResponder, msg: Incoming) -> None:
        self.responder = responder
        self.msg = msg
        self.events: list[Progress | str] = []
        self.finished = False

    @property
    def streamed(self) -> str:
        return "".join(e for e in self.events if isinstance(e, str))

    async def progress(self, step: Progress) -> None:
        self.events.append(step)

    async def text(self, delta: str) -> None:
        self.events.append(delta)

    async def finish(self, replies: list[Reply]) -> None:
        self.finished = True
        if replies:
            await self.responder.deliver(self.msg, replies)

    async def resume(self) -> bool:
        return False


class RecordingResponder:
    def __init__(self) -> None:
        self.delivered: list[tuple[Incoming, list[Reply]]] = []
        self.lives: list[RecordingLive] = []
        self.notices: list[tuple[str, TeamNotice]] = []

    @contextlib.asynccontextmanager
    async def live(self, msg: Incoming) -> AsyncIterator[RecordingLive]:
        shown = RecordingLive(self, msg)
        self.lives.append(shown)
        yield shown

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        self.delivered.append((msg, replies))

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        return None

    async def notify(self, channel: str, notice: TeamNotice, delivery: str, again: bool) -> str | None:
        self.notices.append((channel, notice))
        return f"notice-{len(self.notices)}"

    def texts(self) -> list[str]:
        return [r.text for _, replies in self.delivered for r in replies if isinstance(r, TextReply)]
