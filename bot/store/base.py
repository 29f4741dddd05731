"""The state store interface: one shape for Redis (many processes) and memory (one process).

Every key that belongs to one conversation carries the conversation key as a Redis Cluster hash tag
(`pb:{slack:T1:C1}:history`), so the multi-key steps of a turn stay in one slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bot.types import Approval, ApprovalStatus


class Store(Protocol):
    async def ping(self) -> bool:
        """True when the store answers."""

    async def close(self) -> None: ...

    # -- delivery de-duplication ---------------------------------------------------------------
    async def first_delivery(self, event_id: str, ttl: float) -> bool:
        """Remember `event_id` for `ttl` seconds; True only for the first caller (SET NX)."""

    async def forget_delivery(self, event_id: str) -> None:
        """Undo `first_delivery`, so a delivery that could not be processed is accepted again."""

    # -- conversation lock -----------------------------------------------------------------------
    async def acquire_lock(self, conversation: str, ttl: float) -> str | None:
        """Take the conversation's lock; returns an owner token, or None when someone holds it."""

    async def lock_and_load(self, conversation: str, ttl: float) -> tuple[str | None, list[dict[str, Any]]]:
        """`acquire_lock` and, when it succeeds, `load_history`, in one round trip: (token, history);
        (None, []) when someone else holds the lock."""

    async def release_lock(self, conversation: str, token: str) -> bool:
        """Release only if `token` still owns the lock (compare-and-delete)."""

    async def extend_lock(self, conversation: str, token: str, ttl: float) -> bool:
        """Push the lock's expiry out while a long turn runs; False when the lock was lost."""

    # -- history ---------------------------------------------------------------------------------
    async def load_history(self, conversation: str) -> list[dict[str, Any]]:
        """The stored Chat Completions messages of a conversation, oldest first ([] when new)."""

    async def save_history(
        self, conversation: str, messages: list[dict[str, Any]], *, release_token: str | None = None
    ) -> None:
        """Replace the history in one write. With `release_token`, also release the lock in the same
        round trip (only when the token still owns it)."""

    # -- approvals -------------------------------------------------------------------------------
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

    async def stalled_approvals(self, claimed_before: float) -> list[Approval]:
        """Approvals still `approved` (claimed, tool not finished) that were claimed before the given time."""

    # -- rate limits -----------------------------------------------------------------------------
    async def take_rate(self, group: str, limits: Sequence[tuple[str, int]], window: float) -> tuple[float, str]:
        """Count one request against every limit of `group` (each `(name, at most n per window)`),
        atomically: (0.0, "") when all allow it; otherwise nothing is counted and the answer is
        (seconds until the tightest limit allows one more, that limit's name)."""

    # -- read-only tool cache ----------------------------------------------------------------------
    async def cache_get(self, tool: str, digest: str) -> tuple[str | None, str]:
        """(cached value or None, the tool's current cache generation) in one step."""

    async def cache_put(self, tool: str, digest: str, generation: str, value: str, ttl: float) -> bool:
        """Store `value` only if the tool's generation is still `generation` (no write happened since
        the caller's `cache_get`); False when it moved on and the value was dropped."""

    async def cache_invalidate(self, tools: Sequence[str]) -> None:
        """Make every cached value of these tools stale (bump their generations)."""
