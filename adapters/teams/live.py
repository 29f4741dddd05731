"""A turn shown in a Teams personal chat while it runs: informative updates for tool progress ("Searching
properties in Austin, TX…"), then the answer streamed as typing activities that each hold the whole answer so
far, then the final message (AI label, citations, feedback, cards). Microsoft's "stream bot messages" REST
protocol: sequence numbers from 1 up, the stream id from the first answer, the final message without a sequence.

Streaming is for one-on-one chats only; group chats and channels, and a tenant where Teams refuses it, get the
typing indicator and one message, as before. Updates go out from one pump task, at most one per `interval`
(Teams throttles faster streams), each after the previous one was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes

from adapters.pump import Pump
from adapters.stream_support import StreamSupport
from adapters.teams.ai import OpenEntity, stream_info
from bot.types import Approval, ApprovalRequest, Conversation, Incoming, Progress, ProgressState, Reply, TextReply

log = logging.getLogger(__name__)

STREAM_INTERVAL: Final = 1.0
INFORMATIVE_LIMIT: Final = 1000  # characters Teams allows in an informative update
# Teams' answer when streaming is off for the bot or the user: remembered per tenant.
NO_STREAMING: Final = frozenset({"ContentStreamNotAllowed"})
INTERRUPTED: Final = "This answer was interrupted; propbot is answering again."


def teams_streaming(enabled: bool = True) -> StreamSupport:
    return StreamSupport("teams", NO_STREAMING, enabled)


def error_code(exc: Exception) -> str:
    """The Bot Connector's error code (`ContentStreamNotAllowed`, `BadRequest`), or the exception's class."""
    error = getattr(getattr(exc, "error", None), "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else type(exc).__name__


@dataclass
class Shown:
    """An answer's activities: `answer` carries the feedback (and ends a stream); the others go before or after."""

    answer: Activity
    before: list[Activity] = field(default_factory=list)
    after: list[Activity] = field(default_factory=list)


class StreamHost(Protocol):
    """What a streamed answer uses of the Teams responder (adapters.teams.outbound.TeamsResponder)."""

    async def continue_in(self, reference: dict[str, Any], logic: Callable[[TurnContext], Awaitable[None]]) -> None: ...

    def outgoing(self, ctx: TurnContext, kind: str, reply_to: str | None = None, **fields: Any) -> Activity: ...

    async def send(self, ctx: TurnContext, activity: Activity) -> str | None: ...

    def answer_activities(
        self, ctx: TurnContext, conversation: Conversation, reply: TextReply, streamed: bool = False
    ) -> Shown | None: ...

    async def post_card(
        self, ctx: TurnContext, conversation: Conversation, approval: Approval, ends: OpenEntity | None = None
    ) -> None: ...

    async def post(self, conversation: Conversation, replies: list[Reply]) -> None: ...

    def answered(self, conversation: Conversation, reply: TextReply, activity_id: str | None) -> None: ...


class TeamsLive:
    """One answer being shown (bot.core.port.LiveReply)."""

    def __init__(
        self, responder: StreamHost, msg: Incoming, support: StreamSupport, interval: float = STREAM_INTERVAL
    ) -> None:
        self.responder = responder
        self.msg = msg
        self.support = support
        self.reference = msg.conversation.reference
        kind = (self.reference.get("conversation") or {}).get("conversationType")
        self.tenant = msg.conversation.workspace
        self.streamed = kind == "personal" and support.on(self.tenant)
        self.sent = ""  # all text handed over, to find the reply it belongs to
        self.stream_id: str | None = None
        self.sequence = 0
        self.broken = False  # a stream that failed after it started: no more updates, the end is posted whole
        self.finished = False
        self._shown = ""  # the answer text Teams has
        self._informative: str | None = None
        self._pump = Pump(self._flush, interval, paced=lambda: self.stream_id is not None)
        self.typing: asyncio.Task[None] | None = None

    # -- what the core calls -----------------------------------------------------------------------------
    async def progress(self, step: Progress) -> None:
        if step.state in (ProgressState.RUNNING, ProgressState.WAITING) and not self.sent:
            title = step.title if step.state is ProgressState.RUNNING else f"{step.title}: {step.detail}"
            self._informative = title[:INFORMATIVE_LIMIT]
            self._kick()

    async def text(self, delta: str) -> None:
        self.sent += delta
        self._kick()

    async def finish(self, replies: list[Reply]) -> None:
        self.finished = True
        await self._stop_pump()
        texts = [r for r in replies if isinstance(r, TextReply)]
        # The stream's final message: the reply whose text was streamed, else (only steps were shown) the first.
        main = next((r for r in texts if r.text == self.sent), None) if self.sent else next(iter(replies), None)
        rest = [r for r in replies if r is not main]
        if main is not None and self.stream_id and not self.broken and await self._final(main):
            await self.responder.post(self.msg.conversation, rest)
            return
        await self.responder.post(self.msg.conversation, replies)

    async def resume(self) -> bool:
        return False  # Teams cannot find an earlier attempt's messages: a repeat goes again, saying so

    async def abandon(self) -> None:
        """The turn ended without replies (it runs again later): an open stream is closed saying so."""
        await self._stop_pump()
        if self.stream_id and not self.broken:
            await self._final(TextReply(text=INTERRUPTED, is_error=True))

    # -- the pump --------------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self.streamed and not self.broken:
            self._pump.kick("teams:stream")

    async def _stop_pump(self) -> None:
        await self._pump.stop()

    async def _flush(self) -> None:
        if self.broken:
            return
        if self.sent != self._shown and self.sent.strip():
            text, kind = self.sent, "streaming"
        elif self._informative is not None and not self._shown:
            text, kind = self._informative, "informative"
        else:
            return
        self._informative = None
        self.sequence += 1
        sent = await self._send(ActivityTypes.typing, text, stream_info(kind, self.stream_id, self.sequence))
        if sent is None:
            self.broken = True
            return
        if kind == "streaming":
            self._shown = text
        if self.stream_id is None:
            self.stream_id = sent
            if self.typing is not None:
                self.typing.cancel()  # the stream shows that propbot is working now

    async def _final(self, reply: Reply) -> bool:
        """The final message of the stream: the answer whole, labelled, cited, with its cards and feedback (or
        the approval card, when the turn showed only its steps)."""
        conversation = self.msg.conversation
        ends = stream_info("final", self.stream_id, None)

        async def logic(ctx: TurnContext) -> None:
            if isinstance(reply, ApprovalRequest):
                await self.responder.post_card(ctx, conversation, reply.approval, ends)
                return
            parts = self.responder.answer_activities(ctx, conversation, reply, streamed=True)
            if parts is not None:
                for activity in parts.before:
                    await self.responder.send(ctx, activity)
                parts.answer.entities = [*(parts.answer.entities or []), ends]
                await self.responder.send(ctx, parts.answer)
                for activity in parts.after:
                    await self.responder.send(ctx, activity)

        try:
            await self.responder.continue_in(self.reference, logic)
        except Exception as exc:
            code = error_code(exc)
            log.warning("teams stream %s could not be ended (%s); the answer is posted whole", self.stream_id, code)
            return False
        if isinstance(reply, TextReply):
            self.responder.answered(conversation, reply, self.stream_id)
        return True

    async def _send(self, kind: str, text: str, info: Any) -> str | None:
        """One update; its activity id (the stream's id for the first), or None when Teams refused it."""
        found: list[str | None] = []

        async def logic(ctx: TurnContext) -> None:
            activity = self.responder.outgoing(ctx, kind, text=text, entities=[info])
            found.append(await self.responder.send(ctx, activity) or "")

        try:
            await self.responder.continue_in(self.reference, logic)
        except Exception as exc:
            code = error_code(exc)
            if self.stream_id is None:
                self.support.refused(self.tenant, code)
            log.info("teams stream update refused (%s); the answer will be posted whole", code)
            return None
        return found[0] if found else None


@contextlib.asynccontextmanager
async def shown(live: TeamsLive, typing: asyncio.Task[None]) -> AsyncIterator[TeamsLive]:
    """`live` with the typing indicator running until the stream starts; abandoned if not finished."""
    live.typing = typing
    try:
        yield live
    finally:
        typing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await typing
        if not live.finished:
            await live.abandon()
