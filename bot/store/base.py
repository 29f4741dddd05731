"""The state store, one narrow protocol per concern: each part of the core depends only on what it uses.

Two implementations provide all of them: Redis (many processes, `bot.store.redis`) and memory (one process,
`bot.store.memory`). Every key that belongs to one conversation carries the conversation key as a Redis
Cluster hash tag (`pb:{slack:T1:C1}:history`), so the multi-key steps of a turn stay in one slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from bot.types import Approval, ApprovalStatus


class Loaded(NamedTuple):
    history: list[dict[str, Any]]  # the stored messages, oldest first
    version: str  # what `append_history` compares: the history as read here has this version
    # When the delivery asked about already had its turn: "s|<replies JSON>" (saved, maybe not delivered) or
    # "d" (delivered). A turn taken over from a dead worker finds it and must not run again.
    finished: str | None = None


class Appended(NamedTuple):
    written: bool  # False: the history changed since it was read (read it again), or the delivery had finished
    finished: str | None = None  # the delivery's recorded outcome, when another run of it recorded first


class Conversations(Protocol):
    """A conversation's history: read, then appended to by compare-and-set, so turns of one conversation may
    overlap and each lands whole."""

    async def load_history(self, conversation: str, delivery: str | None = None) -> Loaded:
        """The history, its version, and what `delivery`'s turn answered if it already ran, in one round trip."""

    async def append_history(
        self,
        conversation: str,
        messages: list[dict[str, Any]],
        version: str,
        finished: tuple[str, str, float] | None = None,
    ) -> Appended:
        """Replace the history with `messages` (what was read at `version`, with this turn's exchange appended)
        only while it is still at `version`, and record `finished` = (delivery, replies JSON, seconds to keep) in
        the same step; nothing is written when the delivery already has an outcome (a second run of it)."""


class Deliveries(Protocol):
    """Platform delivery ids already seen, so a redelivered event or click is handled once."""

    async def first_delivery(self, event_id: str, ttl: float) -> bool:
        """Remember `event_id` for `ttl` seconds; True only for the first caller (SET NX)."""

    async def forget_delivery(self, event_id: str) -> None:
        """Undo `first_delivery`, so a delivery that could not be processed is accepted again."""


class Notes(Protocol):
    """Small values kept for a while under a key, e.g. which tools an answer used, for feedback on it later."""

    async def put_note(self, key: str, value: str, ttl: float) -> None: ...

    async def get_note(self, key: str) -> str | None: ...


class Approvals(Protocol):
    """Approval records and their state machine (pending -> approved -> done | failed, -> cancelled | expired)."""

    async def create_approval(self, approval: Approval, keep_for: float) -> None:
        """Store a new pending approval; the record itself is kept `keep_for` seconds (for audit)."""

    async def get_approval(self, approval_id: str) -> Approval | None: ...

    async def transition(
        self,
        approval_id: str,
        expected: ApprovalStatus,
        new: ApprovalStatus,
        now: float,
        changes: dict[str, Any] | None = None,
    ) -> tuple[bool, Approval | None]:
        """Atomically move an approval from `expected` to `new`, applying `changes` (fields of
        Approval). Exactly one of any number of concurrent callers, on any process, wins.

        Leaving `pending` for anything but `expired` after `expires_at` fails and marks the approval
        expired instead. Returns (won, approval as it now stands)."""

    async def update_approval_fields(self, approval_id: str, changes: dict[str, Any]) -> None:
        """Set non-status fields (e.g. `card_ref` after the adapter posted the card)."""

    async def pending_approvals(self) -> list[Approval]:
        """Approvals still pending (expired ones included until swept), oldest first."""

    async def unsettled_approvals(self) -> list[Approval]:
        """Every approval not yet `settle`d, oldest first: pending ones, running ones, and those that reached a
        final status (done, failed, cancelled, expired) whose decider may have stopped before its card and
        follow-up were announced."""

    async def settle(self, approval_id: str) -> None:
        """The approval's final outcome was announced: drop it from the sweeper's indexes."""

    async def mark_running(self, approval_id: str, since: float) -> None:
        """Index the approval as running since `since` (before its claim, and again to schedule a retry), so
        `stalled_approvals` finds it even if the process stops right after the claim."""

    async def stalled_approvals(self, claimed_before: float) -> list[Approval]:
        """Approvals still `approved` (claimed, outcome not recorded) indexed as running since before the given
        time."""


class Counters(Protocol):
    """Rate-limit counters shared by every process."""

    async def take_rate(self, group: str, limits: Sequence[tuple[str, int]], window: float) -> tuple[float, str]:
        """Count one request against every limit of `group` (each `(name, at most n per window)`),
        atomically: (0.0, "") when all allow it; otherwise nothing is counted and the answer is
        (seconds until the tightest limit allows one more, that limit's name)."""


class CacheStore(Protocol):
    """Short-lived answers of read-only tools, made stale by generation counters."""

    async def cache_get(self, tool: str, digest: str) -> tuple[str | None, str]:
        """(cached value or None, the tool's current cache generation) in one step."""

    async def cache_put(self, tool: str, digest: str, generation: str, value: str, ttl: float) -> bool:
        """Store `value` only if the tool's generation is still `generation` (no write happened since
        the caller's `cache_get`); False when it moved on and the value was dropped."""

    async def cache_invalidate(self, tools: Sequence[str]) -> None:
        """Make every cached value of these tools stale (bump their generations)."""


class Health(Protocol):
    async def ping(self) -> bool:
        """True when the store answers."""

    async def close(self) -> None: ...


class Store(Conversations, Deliveries, Notes, Approvals, Counters, CacheStore, Health, Protocol):
    """Everything one store implementation provides; the composition root hands each part its slice."""
