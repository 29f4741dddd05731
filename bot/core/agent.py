"""The agent: one turn = de-duplicate, rate-limit, read the conversation, run the tool loop, append the exchange."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from pydantic import TypeAdapter

from bot.core import texts
from bot.core.clock import stamp
from bot.core.loop import ToolLoop
from bot.core.port import LiveReply
from bot.core.rate_limit import RateLimiter
from bot.core.transcript import Transcript
from bot.errors import PropbotError, StoreUnavailable
from bot.observability import metrics, tracing
from bot.observability.logs import log_context
from bot.store.base import Deliveries
from bot.types import Incoming, Reply, TextReply

log = logging.getLogger(__name__)


class TurnDeferred(PropbotError):
    """The turn could not run now (the state store failed) and nothing of it was saved; it must be tried again."""


@dataclass
class TurnResult:
    replies: list[Reply]
    # The delivery's turn had already run (taken over from a worker that died before acknowledging it):
    # `replies` are what it answered then, and `delivered` whether they had reached the platform.
    repeated: bool = False
    delivered: bool = False


_REPLIES = TypeAdapter(list[Reply])


def _encode(replies: list[Reply]) -> str:
    return _REPLIES.dump_json(replies).decode()


def _repeated(finished: str) -> TurnResult:
    if finished == "d":
        return TurnResult([], repeated=True, delivered=True)
    return TurnResult(_REPLIES.validate_json(finished.removeprefix("s|")), repeated=True, delivered=False)


@dataclass(frozen=True)
class TurnLimits:
    max_message_chars: int  # longer messages are cut, with a notice
    dedupe_ttl: float  # seconds a delivery id is remembered


class Agent:
    """Built by the composition root from the parts it uses; it builds nothing itself."""

    def __init__(
        self, deliveries: Deliveries, transcript: Transcript, loop: ToolLoop, limiter: RateLimiter, limits: TurnLimits
    ) -> None:
        self.deliveries = deliveries
        self.transcript = transcript
        self.loop = loop
        self.limiter = limiter
        self.limits = limits

    # -- one user message ------------------------------------------------------------------------
    async def handle(self, msg: Incoming) -> list[Reply]:
        """Answer one message. Redeliveries return []; failures come back as plain-words replies."""
        try:
            if not await self.accept(msg):
                return []
        except StoreUnavailable:
            metrics.TURNS.labels(msg.conversation.platform, "unavailable").inc()
            return [texts.unavailable()]
        return await self.run_turn(msg)

    async def accept(self, msg: Incoming) -> bool:
        """False for a redelivery of a message already accepted. Raises StoreUnavailable."""
        with log_context(msg.conversation.key, msg.event_id):
            if await self.deliveries.first_delivery(msg.event_id, self.limits.dedupe_ttl):
                return True
            self.duplicate(msg)
            return False

    @staticmethod
    def duplicate(msg: Incoming) -> None:
        """Count and log a redelivery that was dropped."""
        with log_context(msg.conversation.key, msg.event_id):
            metrics.DUPLICATES.labels(msg.conversation.platform).inc()
            log.info("dropped duplicate delivery %s", msg.event_id)

    async def run_turn(self, msg: Incoming, live: LiveReply | None = None) -> list[Reply]:
        """The turn for an accepted message, run here and now: read, loop, append. An unreachable store is
        answered in words, and the delivery is forgotten so the platform's redelivery is accepted later."""
        try:
            return (await self.take_turn(msg, live)).replies
        except TurnDeferred:
            await self.forget(msg.event_id)
            return [texts.unavailable()]

    async def take_turn(self, msg: Incoming, live: LiveReply | None = None) -> TurnResult:
        """The turn for an accepted message, shown on `live` as it runs. Raises TurnDeferred when it could not
        run now (the store failed) and nothing was saved: the caller retries it."""
        conversation = msg.conversation
        with (
            log_context(conversation.key, msg.event_id),
            tracing.span("propbot.turn", platform=conversation.platform, user=tracing.user_hash(msg.user)),
        ):
            started = time.perf_counter()
            result = await self._turn(msg, live)
            log.info("turn finished in %.2fs with %d reply(ies)", time.perf_counter() - started, len(result.replies))
            return result

    async def _turn(self, msg: Incoming, live: LiveReply | None) -> TurnResult:
        platform = msg.conversation.platform
        text, cut = texts.bound_input(msg.text, self.limits.max_message_chars)
        try:
            if (refusal := await self.limiter.refuse(msg)) is not None:
                return TurnResult([refusal])
            opened = await self.transcript.open(msg.conversation.key, msg.event_id)
            if opened.finished is not None:
                # This delivery's turn already ran (its worker died before acknowledging it): never again.
                log.warning("turn %s had already run; not running it twice", msg.event_id)
                return _repeated(opened.finished)
            said = f"{msg.user_name}: {text}" if msg.user_name else text
            content = f"{stamp(msg.received_at, msg.timezone)} {said}"
            opened.history.append({"role": "user", "content": content})
            out = await self.loop.run(msg.user, msg.user_name, msg.conversation, opened.history, live=live)
            if cut:
                out.insert(0, TextReply(text=texts.input_cut_notice(self.limits.max_message_chars)))
            earlier = await self.transcript.append(msg.conversation.key, opened, outcome=(msg.event_id, _encode(out)))
            if earlier is not None:
                # Another run of this delivery (a worker that was thought dead) recorded its turn first: its
                # answer is the one, and this run's is dropped unsaid.
                log.warning("turn %s was recorded by another run; not answering it twice", msg.event_id)
                return _repeated(earlier)
        except StoreUnavailable:
            metrics.TURNS.labels(platform, "unavailable").inc()
            raise TurnDeferred("state store unavailable") from None
        failed = any(isinstance(r, TextReply) and r.is_error for r in out)
        metrics.TURNS.labels(platform, "error" if failed else "ok").inc()
        return TurnResult(out)

    async def forget(self, event_id: str) -> None:
        """Undo `accept` (best effort), so the platform's redelivery of this message is accepted later."""
        with contextlib.suppress(StoreUnavailable):
            await self.deliveries.forget_delivery(event_id)
