"""The audit trail in a Redis Stream (`pb:audit`), kept by length and by age, and read back for the CLI.

Each entry holds one `AuditEvent` as flat string fields; `arguments` is JSON, already redacted by the
tool's spec before it gets here. One stream key means every process appends to one place and `XADD`
orders the entries; on Redis Cluster the stream lives on one node, which is fine for one write per
tool call.

Auditing never breaks a turn: a failed write is logged (the event itself still reaches the log via
`LogAudit` in the fan-out) and counted as `propbot_errors_total{kind="audit_unavailable"}`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from typing import Any

from bot.observability import metrics
from bot.observability.audit import AuditEvent
from bot.store.keys import AUDIT_STREAM
from bot.store.redis import REDIS_ERRORS, RedisClient, text

log = logging.getLogger(__name__)

_PAGE = 500


def _fields(event: AuditEvent) -> dict[str, str]:
    return {
        "at": repr(event.at),
        "kind": event.kind,
        "user": event.user,
        "conversation": event.conversation,
        "tool": event.tool,
        "arguments": json.dumps(event.arguments, separators=(",", ":"), ensure_ascii=False, default=str),
        "outcome": event.outcome,
        "duration": repr(event.duration),
        "detail": event.detail,
        "result": event.result,
        "approval_id": event.approval_id or "",
    }


def _event(raw: dict[Any, Any] | None) -> AuditEvent:
    fields = {text(k): text(v) for k, v in (raw or {}).items()}
    return AuditEvent(
        kind=fields.get("kind", ""),
        user=fields.get("user", ""),
        conversation=fields.get("conversation", ""),
        tool=fields.get("tool", ""),
        arguments=json.loads(fields.get("arguments") or "{}"),
        outcome=fields.get("outcome", ""),
        duration=float(fields.get("duration") or 0),
        detail=fields.get("detail", ""),
        result=fields.get("result", ""),
        approval_id=fields.get("approval_id") or None,
        at=float(fields.get("at") or 0),
    )


class RedisStreamAudit:
    """An AuditSink appending to `pb:audit`: at most ~`maxlen` entries, none older than ~`max_age_days`."""

    def __init__(
        self,
        client: RedisClient,
        *,
        maxlen: int = 100_000,
        max_age_days: float = 90,
        trim_every: int = 100,
        stream: str = AUDIT_STREAM,
    ) -> None:
        self.client = client
        self.maxlen = maxlen
        self.max_age = max_age_days * 86400
        self.trim_every = trim_every
        self.stream = stream
        self._adds = 0

    async def record(self, event: AuditEvent) -> None:
        # Age trimming scans from the stream's head, so it rides along only every Nth add (and on a
        # process's first); `~` lets Redis trim whole macro-nodes, which is what keeps XADD O(1).
        trim = self._adds % self.trim_every == 0
        self._adds += 1
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xadd(self.stream, _fields(event), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            if trim:
                oldest = int((time.time() - self.max_age) * 1000)
                pipe.xtrim(self.stream, minid=str(oldest), approximate=True)
            await pipe.execute()
        except REDIS_ERRORS as exc:
            metrics.ERRORS.labels("audit_unavailable").inc()
            # The class only: redis error text can carry host names, and the event's arguments stay
            # out of this line by design.
            log.warning("audit trail unavailable (%s); %s event kept in the log only", type(exc).__name__, event.kind)


async def read_audit(
    client: RedisClient,
    *,
    since: float | None = None,
    user: str | None = None,
    tool: str | None = None,
    kinds: Collection[str] | None = None,
    limit: int = 50,
    stream: str = AUDIT_STREAM,
) -> list[AuditEvent]:
    """The newest `limit` events matching the filters, oldest first. `since` is a Unix time."""
    low = f"{int(since * 1000)}-0" if since is not None else "-"
    high = "+"
    found: list[AuditEvent] = []
    while len(found) < limit:
        # Newest first, a page at a time, so a filtered read of a long trail stops as soon as it
        # has enough instead of loading 100k entries.
        page = list(await client.xrevrange(stream, max=high, min=low, count=_PAGE) or [])
        for _, raw in page:
            event = _event(raw)
            if (
                (user is None or event.user == user)
                and (tool is None or event.tool == tool)
                and (kinds is None or event.kind in kinds)
            ):
                found.append(event)
                if len(found) == limit:
                    break
        if len(page) < _PAGE:
            break
        last = page[-1][0]
        assert last is not None
        high = "(" + text(last)  # exclusive: continue just below the last id seen
    found.reverse()
    return found
