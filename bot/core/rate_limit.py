"""Per-user and per-workspace message limits, counted atomically in the store.

Both limits are checked and counted in one step (one Lua script on Redis), so a refused message never
uses up anyone's allowance, and many processes share one count.
"""

from __future__ import annotations

import logging

from bot.core import texts
from bot.observability import metrics
from bot.observability.audit import AuditEvent, AuditSink
from bot.store.base import Counters
from bot.types import Incoming, TextReply

log = logging.getLogger(__name__)

WINDOW = 60.0
_SCOPES = {"ws": "workspace"}


class RateLimiter:
    def __init__(self, counters: Counters, audit: AuditSink, *, per_user: int, per_workspace: int) -> None:
        """`per_user` / `per_workspace`: messages per minute, 0 for no limit."""
        self.counters = counters
        self.audit = audit
        self.per_user = per_user
        self.per_workspace = per_workspace

    async def refuse(self, msg: Incoming) -> TextReply | None:
        """None when `msg` may run (and it is now counted); else the reply. Raises StoreUnavailable."""
        limits: list[tuple[str, int]] = []
        if self.per_workspace:
            limits.append(("ws", self.per_workspace))
        if self.per_user:
            limits.append((f"u:{msg.user}", self.per_user))
        if not limits:
            return None
        conversation = msg.conversation
        wait, name = await self.counters.take_rate(f"{conversation.platform}:{conversation.workspace}", limits, WINDOW)
        if not name:
            return None
        scope = _SCOPES.get(name, "user")
        metrics.RATE_LIMITED.labels(scope).inc()
        metrics.TURNS.labels(conversation.platform, "rate_limited").inc()
        log.info("rate limit (%s) refused a message from %s; retry in %.1fs", scope, msg.user, wait)
        await self.audit.record(
            AuditEvent(
                kind="rate_limited",
                user=msg.user,
                conversation=conversation.key,
                outcome="rate_limited",
                detail=f"{scope} limit; retry in {wait:.1f}s",
            )
        )
        return texts.rate_limited(wait)
