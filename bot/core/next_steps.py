"""Next steps worth offering after an answer, from the records it showed and what the person may do: after one
property, its maintenance requests and scheduling; after one open request, cancelling it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from bot.types import Source, Suggestion

MAX_SOURCES: Final = 20
MAX_STEPS: Final = 3
_CANCELLABLE: Final = frozenset({"open", "scheduled", "in_progress"})


def merge_sources(found: list[Source], more: list[Source]) -> None:
    """Add `more` to `found` in order, once per record, at most MAX_SOURCES."""
    seen = {s.id for s in found}
    for source in more:
        if source.id not in seen and len(found) < MAX_SOURCES:
            found.append(source)
            seen.add(source.id)


def next_steps(allowed: Collection[str], sources: list[Source]) -> list[Suggestion]:
    properties = [s for s in sources if s.kind == "property"]
    requests = [s for s in sources if s.kind == "maintenance_request"]
    steps: list[Suggestion] = []
    if len(properties) == 1:
        pid = properties[0].id
        if "list_maintenance_requests" in allowed:
            listing = f"List the maintenance requests for {pid}"
            steps.append(Suggestion(title="List its maintenance requests", message=listing))
        if "schedule_maintenance" in allowed:
            steps.append(Suggestion(title="Schedule maintenance…", message=f"Schedule maintenance at {pid}"))
    if len(requests) == 1 and requests[0].status in _CANCELLABLE and "cancel_maintenance_request" in allowed:
        rid = requests[0].id
        steps.append(Suggestion(title=f"Cancel {rid}", message=f"Cancel maintenance request {rid}"))
    return steps[:MAX_STEPS]
