"""The audit trail: who did what, where, with which arguments, and how it ended."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final, Protocol

from bot.types import AuditEvent
from tools.text import shorten

__all__ = ["REDACTED", "AuditEvent", "AuditSink", "FanoutAudit", "LogAudit", "result_summary"]

log = logging.getLogger("propbot.audit")

REDACTED = "[redacted]"


_RESULT_KEYS: Final = frozenset({"id", "status", "count"})
_RESULT_PAIRS: Final = 4


def result_summary(data: Any, sensitive: Iterable[str] = ()) -> str:
    """The identifying part of a tool's result data, whatever the tool: its top-level `id`, `*_id`, `status`
    and `count` values, e.g. "request_id=MR-12 status=scheduled property_id=P-1001". Enough to find what a
    call created or changed without copying its whole answer (which may hold personal data) into the trail."""
    if not isinstance(data, dict):
        return ""
    hidden = set(sensitive)
    pairs = [
        f"{key}={REDACTED if key in hidden else value}"
        for key, value in data.items()
        if (key in _RESULT_KEYS or key.endswith("_id")) and isinstance(value, str | int | float) and value != ""
    ]
    return shorten(" ".join(pairs[:_RESULT_PAIRS]), 200)


class AuditSink(Protocol):
    async def record(self, event: AuditEvent) -> None: ...


class LogAudit:
    """Audit to the log only: used when there is no Redis to keep a trail in."""

    async def record(self, event: AuditEvent) -> None:
        # A feedback comment is what the person wrote for whoever reads the trail; without Redis this line is the
        # trail, so it carries the comment (quoted: one log line, whatever they typed).
        said = f" comment={shorten(event.detail, 500)!r}" if event.kind == "feedback" and event.detail else ""
        log.info(
            "audit %s tool=%s user=%s outcome=%s%s%s",
            *(event.kind, event.tool, event.user, event.outcome, f" {event.result}" if event.result else "", said),
        )


class FanoutAudit:
    """Sends each event to several sinks (the trail, plus listeners such as the terminal chat)."""

    def __init__(self, sinks: list[AuditSink]) -> None:
        self.sinks = sinks

    async def record(self, event: AuditEvent) -> None:
        for sink in self.sinks:
            await sink.record(event)
