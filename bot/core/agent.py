"""The agent: one turn = de-duplicate, rate-limit, lock the conversation, run the tool loop, save, unlock."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from bot.core import texts
from bot.core.loop import ToolLoop
from bot.core.rate_limit import RateLimiter
from bot.core.transcript import Transcript
from bot.errors import Busy, StoreUnavailable
from bot.observability import metrics, tracing
from bot.observability.logs import log_context
from bot.store.base import Deliveries
from bot.types import Incoming, Reply, TextReply

log = logging.getLogger(__name__)


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
            metrics.DUPLICATES.labels(msg.conversation.platform).inc()
            log.info("dropped duplicate delivery %s", msg.event_id)
            return False

    async def run_turn(self, msg: Incoming) -> list[Reply]:
        """The turn for an accepted message: lock, load, loop, save, unlock."""
        conversation = msg.conversation
        with (
            log_context(conversation.key, msg.event_id),
            tracing.span("propbot.turn", platform=conversation.platform, user=tracing.user_hash(msg.user)),
        ):
            started = time.perf_counter()
            out = await self._turn(msg)
            log.info("turn finished in %.2fs with %d reply(ies)", time.perf_counter() - started, len(out))
            return out

    async def _turn(self, msg: Incoming) -> list[Reply]:
        platform = msg.conversation.platform
        text, cut = texts.bound_input(msg.text, self.limits.max_message_chars)
        try:
            # Before the lock: a refused message must not queue behind, or delay, the others.
            if (refusal := await self.limiter.refuse(msg)) is not None:
                return [refusal]
            async with self.transcript.locked(msg.conversation.key) as (token, history):
                content = f"{msg.user_name}: {text}" if msg.user_name else text
                history.append({"role": "user", "content": content})
                out = await self.loop.run(msg.user, msg.user_name, msg.conversation, history)
                await self.transcript.save(msg.conversation.key, history, token)
        except Busy:
            metrics.TURNS.labels(platform, "busy").inc()
            await self.forget(msg.event_id)
            return [texts.busy()]
        except StoreUnavailable:
            # Let the platform's redelivery (or the user) try again once the store is back.
            metrics.TURNS.labels(platform, "unavailable").inc()
            await self.forget(msg.event_id)
            return [texts.unavailable()]
        failed = any(isinstance(r, TextReply) and r.is_error for r in out)
        metrics.TURNS.labels(platform, "error" if failed else "ok").inc()
        if cut:
            out.insert(0, TextReply(text=texts.input_cut_notice(self.limits.max_message_chars)))
        return out

    async def forget(self, event_id: str) -> None:
        """Undo `accept` (best effort), so the platform's redelivery of this message is accepted later."""
        with contextlib.suppress(StoreUnavailable):
            await self.deliveries.forget_delivery(event_id)
