"""The state store for one process: plain dicts, the same semantics as `RedisStore`.

Nothing here awaits inside a read-modify-write, so every operation is atomic with respect to other
asyncio tasks. State is held as JSON text or deep copies so callers can never mutate what is stored.
TTLs use the monotonic clock (like Redis expiry, immune to wall-clock jumps); approval expiry uses
the caller's `now`, as in Redis.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from bot.store._codec import encode_changes
from bot.store.base import Appended, Loaded
from bot.types import Approval, ApprovalStatus

# Expired dedupe / history entries are dropped lazily; sweep the whole dict only once it grows past this.
_SWEEP_AT = 10_000


def _ms(ttl: float) -> int:
    # As in Redis, which rejects a zero expiry: round up so a tiny ttl still expires at all.
    return max(1, int(ttl * 1000))


class MemoryStore:
    def __init__(self, *, history_ttl: float | None = None) -> None:
        self._history_ttl = history_ttl
        self._deliveries: dict[str, float] = {}
        self._notes: dict[str, tuple[str, float]] = {}
        self._versions: dict[str, str] = {}  # expires with its history: an absent history is version "0"
        # conversation -> (JSON text, monotonic deadline or inf)
        self._histories: dict[str, tuple[str, float]] = {}
        # (conversation, delivery) -> (the delivery's recorded outcome, monotonic deadline)
        self._finished: dict[tuple[str, str], tuple[str, float]] = {}
        # approval id -> (approval as JSON-compatible dict, monotonic deadline of the record)
        self._approvals: dict[str, tuple[dict[str, Any], float]] = {}
        # approval id -> since when it is indexed as running (claimed, outcome not recorded)
        self._running: dict[str, float] = {}
        # ids of approvals not yet settled (as the Redis pending index holds them)
        self._unsettled: set[str] = set()
        # (group, name) -> GCRA theoretical arrival time, monotonic seconds
        self._rates: dict[tuple[str, str], float] = {}
        self._cache_generations: dict[str, int] = {}
        # (tool, digest) -> (generation, value, monotonic deadline)
        self._cache: dict[tuple[str, str], tuple[str, str, float]] = {}

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    # -- delivery de-duplication ---------------------------------------------------------------
    async def first_delivery(self, event_id: str, ttl: float) -> bool:
        now = self._now()
        if len(self._deliveries) > _SWEEP_AT:
            self._deliveries = {k: d for k, d in self._deliveries.items() if d > now}
        deadline = self._deliveries.get(event_id)
        if deadline is not None and deadline > now:
            return False
        self._deliveries[event_id] = now + _ms(ttl) / 1000
        return True

    async def forget_delivery(self, event_id: str) -> None:
        self._deliveries.pop(event_id, None)

    async def put_note(self, key: str, value: str, ttl: float) -> None:
        now = self._now()
        if len(self._notes) > _SWEEP_AT:
            self._notes = {k: v for k, v in self._notes.items() if v[1] > now}
        self._notes[key] = (value, now + _ms(ttl) / 1000)

    async def get_note(self, key: str) -> str | None:
        found = self._notes.get(key)
        return found[0] if found is not None and found[1] > self._now() else None

    # -- history ---------------------------------------------------------------------------------
    async def load_history(self, conversation: str, delivery: str | None = None) -> Loaded:
        history = self._load(conversation)
        version = self._versions.get(conversation, "0") if conversation in self._histories else "0"  # as Redis
        return Loaded(history, version, self._finished_of(conversation, delivery))

    async def append_history(
        self,
        conversation: str,
        messages: list[dict[str, Any]],
        version: str,
        finished: tuple[str, str, float] | None = None,
    ) -> Appended:
        if finished is not None and (done := self._finished_of(conversation, finished[0])) is not None:
            return Appended(False, done)
        self._load(conversation)  # drops an expired history, and its version with it
        current = self._versions.get(conversation, "0") if conversation in self._histories else "0"
        if current != version:
            return Appended(False)
        if len(self._histories) > _SWEEP_AT:
            now = self._now()
            self._histories = {k: held for k, held in self._histories.items() if held[1] > now}
            self._versions = {k: v for k, v in self._versions.items() if k in self._histories}
            self._finished = {k: held for k, held in self._finished.items() if held[1] > now}
        deadline = math.inf if self._history_ttl is None else self._now() + _ms(self._history_ttl) / 1000
        # JSON text, like Redis: a copy the caller can't touch, and non-serialisable data fails here too.
        self._histories[conversation] = (json.dumps(messages), deadline)
        self._versions[conversation] = str(int(version) + 1)
        if finished is not None:
            delivery, outcome, keep = finished
            self._finished[(conversation, delivery)] = (outcome, self._now() + _ms(keep) / 1000)
        return Appended(True)

    def _finished_of(self, conversation: str, delivery: str | None) -> str | None:
        held = self._finished.get((conversation, delivery or "-"))
        return held[0] if held is not None and held[1] > self._now() else None

    def _load(self, conversation: str) -> list[dict[str, Any]]:
        held = self._histories.get(conversation)
        if held is None:
            return []
        if held[1] <= self._now():
            del self._histories[conversation]
            self._versions.pop(conversation, None)
            return []
        messages: list[dict[str, Any]] = json.loads(held[0])
        return messages

    # -- approvals -------------------------------------------------------------------------------
    def _record(self, approval_id: str) -> dict[str, Any] | None:
        held = self._approvals.get(approval_id)
        if held is None:
            return None
        if held[1] <= self._now():
            del self._approvals[approval_id]
            return None
        return held[0]

    async def create_approval(self, approval: Approval, keep_for: float) -> None:
        self._approvals[approval.id] = (approval.model_dump(mode="json"), self._now() + _ms(keep_for) / 1000)
        self._unsettled.add(approval.id)

    async def get_approval(self, approval_id: str) -> Approval | None:
        record = self._record(approval_id)
        return None if record is None else Approval.model_validate(record)

    async def transition(
        self,
        approval_id: str,
        expected: ApprovalStatus,
        new: ApprovalStatus,
        now: float,
        changes: dict[str, Any] | None = None,
    ) -> tuple[bool, Approval | None]:
        # Validate before touching anything, as RedisStore does before its script runs.
        encoded = encode_changes(changes or {})
        record = self._record(approval_id)
        if record is None:
            return False, None
        expected, new = ApprovalStatus(expected), ApprovalStatus(new)
        if record["status"] != expected.value:
            return False, Approval.model_validate(record)
        leaving_pending = expected == ApprovalStatus.PENDING and new != ApprovalStatus.EXPIRED
        if leaving_pending and now > float(record["expires_at"]):
            record["status"] = ApprovalStatus.EXPIRED.value
            return False, Approval.model_validate(record)
        record.update({name: json.loads(text) for name, text in encoded.items()})
        record["status"] = new.value
        return True, Approval.model_validate(record)

    async def update_approval_fields(self, approval_id: str, changes: dict[str, Any]) -> None:
        encoded = encode_changes(changes)
        record = self._record(approval_id)
        if record is not None:
            record.update({name: json.loads(text) for name, text in encoded.items()})

    async def mark_running(self, approval_id: str, since: float) -> None:
        self._running[approval_id] = since

    async def stalled_approvals(self, claimed_before: float) -> list[Approval]:
        stalled: list[tuple[float, Approval]] = []
        for approval_id, since in list(self._running.items()):
            if since >= claimed_before:
                continue
            record = self._record(approval_id)
            if record is None or record["status"] != ApprovalStatus.APPROVED.value:
                del self._running[approval_id]  # finished, or a claim that was indexed but never made
                continue
            stalled.append((since, Approval.model_validate(record)))
        return [approval for _, approval in sorted(stalled, key=lambda pair: pair[0])]

    async def pending_approvals(self) -> list[Approval]:
        return [a for a in self._indexed() if a.status is ApprovalStatus.PENDING]

    async def unsettled_approvals(self) -> list[Approval]:
        return self._indexed()

    async def settle(self, approval_id: str) -> None:
        self._unsettled.discard(approval_id)
        self._running.pop(approval_id, None)

    def _indexed(self) -> list[Approval]:
        found = []
        for approval_id in list(self._unsettled):
            record = self._record(approval_id)
            if record is None:
                self._unsettled.discard(approval_id)
            else:
                found.append(Approval.model_validate(record))
        return sorted(found, key=lambda a: a.created_at)

    # -- rate limits -----------------------------------------------------------------------------
    async def take_rate(self, group: str, limits: Sequence[tuple[str, int]], window: float) -> tuple[float, str]:
        now = self._now()
        if len(self._rates) > _SWEEP_AT:
            self._rates = {k: tat for k, tat in self._rates.items() if tat > now}
        wait, worst = 0.0, ""
        arrivals: list[tuple[tuple[str, str], float]] = []
        for name, limit in limits:
            # GCRA, as in the Redis script: each request moves the arrival time on by one interval;
            # it is allowed while that stays within one window of now.
            arrival = max(self._rates.get((group, name), now), now) + window / limit
            over = arrival - now - window
            if over > wait:
                wait, worst = over, name
            arrivals.append(((group, name), arrival))
        if worst:
            return wait, worst
        self._rates.update(arrivals)
        return 0.0, ""

    # -- read-only tool cache ----------------------------------------------------------------------
    async def cache_get(self, tool: str, digest: str) -> tuple[str | None, str]:
        generation = str(self._cache_generations.get(tool, 0))
        held = self._cache.get((tool, digest))
        if held is None or held[0] != generation or held[2] <= self._now():
            return None, generation
        return held[1], generation

    async def cache_put(self, tool: str, digest: str, generation: str, value: str, ttl: float) -> bool:
        if str(self._cache_generations.get(tool, 0)) != generation:
            return False
        now = self._now()
        if len(self._cache) > _SWEEP_AT:
            self._cache = {k: held for k, held in self._cache.items() if held[2] > now}
        self._cache[(tool, digest)] = (generation, value, now + _ms(ttl) / 1000)
        return True

    async def cache_invalidate(self, tools: Sequence[str]) -> None:
        for tool in tools:
            self._cache_generations[tool] = self._cache_generations.get(tool, 0) + 1
