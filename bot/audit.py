"""The audit trail: who did what, where, with which arguments, and how it ended."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from pydantic import BaseModel, Field

log = logging.getLogger("propbot.audit")


class AuditEvent(BaseModel):
    kind: str  # tool_call | refused | approval_requested | approved | cancelled | expired | rate_limited
    user: str
    conversation: str
    tool: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)  # already redacted by the tool's spec
    outcome: str = ""
    duration: float = 0.0
    detail: str = ""
    approval_id: str | None = None
    at: float = Field(default_factory=time.time)


class AuditSink(Protocol):
    async def record(self, event: AuditEvent) -> None: ...


class LogAudit:
    """Audit to the log only: used when there is no Redis to keep a trail in."""

    async def record(self, event: AuditEvent) -> None:
        log.info("audit %s tool=%s user=%s outcome=%s", event.kind, event.tool, event.user, event.outcome)


class FanoutAudit:
    """Sends each event to several sinks (the trail, plus listeners such as the terminal chat)."""

    def __init__(self, sinks: list[AuditSink]) -> None:
        self.sinks = sinks

    async def record(self, event: AuditEvent) -> None:
        for sink in self.sinks:
            await sink.record(event)
