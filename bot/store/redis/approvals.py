"""Approvals on Redis: one hash per approval, the status moved by one script, two advisory indexes.

Approval changes are stored as separate JSON hash fields (`f:<field>`) rather than merged inside Lua,
because Lua's cjson re-encoding would turn `[]` into `{}` and round floats (timestamps) to 14 digits.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, cast

from bot.store import keys
from bot.store._codec import encode_changes
from bot.store.redis import _scripts
from bot.store.redis._connection import RedisClient, RedisPart, ms, text
from bot.types import Approval, ApprovalStatus

# An index entry is written just before its record (or its claim): a young one without a matching record may be
# mid-write, so only entries older than this are dropped as stale.
STALE_AFTER = 60.0


def _approval_from_hash(raw: dict[Any, Any] | list[Any]) -> Approval | None:
    """Rebuild an Approval from HGETALL (a dict from redis-py, a flat list from a script)."""
    items = list(raw.items()) if isinstance(raw, dict) else list(zip(raw[::2], raw[1::2], strict=True))
    fields = {text(k): text(v) for k, v in items}
    if "data" not in fields or "status" not in fields:
        return None
    data: dict[str, Any] = json.loads(fields["data"])
    for name, value in fields.items():
        if name.startswith("f:"):
            data[name[2:]] = json.loads(value)
    data["status"] = fields["status"]  # the hash field is authoritative; `data` is the creation copy
    return Approval.model_validate(data)


def _change_pairs(changes: dict[str, Any] | None) -> list[str]:
    pairs: list[str] = []
    for name, encoded in encode_changes(changes or {}).items():
        pairs += [f"f:{name}", encoded]
        if name == "expires_at":
            pairs += ["expires_at", encoded]  # the plain field is what the transition script compares
    return pairs


class RedisApprovals(RedisPart):
    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        super().__init__(client, history_ttl=history_ttl)
        self._transition = client.register_script(_scripts.TRANSITION)
        self._update = client.register_script(_scripts.UPDATE)
        self._create = client.register_script(_scripts.CREATE)

    async def create_approval(self, approval: Approval, keep_for: float) -> None:
        record = {
            "status": approval.status.value,
            "created_at": repr(approval.created_at),
            "expires_at": repr(approval.expires_at),
            "data": approval.model_dump_json(),
        }
        args: list[str | int] = [ms(keep_for)]
        for name, value in record.items():
            args += [name, value]
        async with self._op("create_approval"):
            # Index first (record and index live in different cluster slots): a record can then never exist
            # without its index entry, and the sweeper expires every pending request.
            if approval.status is ApprovalStatus.PENDING:
                await self._client.zadd(keys.PENDING_INDEX, {approval.id: approval.created_at})
            await self._create(keys=[keys.approval(approval.id)], args=args)

    async def get_approval(self, approval_id: str) -> Approval | None:
        async with self._op("get_approval"):
            raw = await self._client.hgetall(keys.approval(approval_id))
        return _approval_from_hash(raw)

    async def transition(
        self,
        approval_id: str,
        expected: ApprovalStatus,
        new: ApprovalStatus,
        now: float,
        changes: dict[str, Any] | None = None,
    ) -> tuple[bool, Approval | None]:
        pairs = _change_pairs(changes)  # validation errors surface before anything is written
        expected, new = ApprovalStatus(expected), ApprovalStatus(new)
        token = secrets.token_hex(8)
        async with self._op("transition"):
            won, _, raw = await self._transition(
                keys=[keys.approval(approval_id)],
                args=[expected.value, new.value, repr(float(now)), token, *pairs],
            )
            approval = _approval_from_hash(raw)
        # The indexes keep the approval until whoever finished it has also announced it (`settle`).
        return bool(won), approval

    async def settle(self, approval_id: str) -> None:
        async with self._op("settle"):
            # Two keys in different cluster slots: two commands; a leftover entry is only announced again.
            await self._client.zrem(keys.RUNNING_INDEX, approval_id)
            await self._client.zrem(keys.PENDING_INDEX, approval_id)

    async def mark_running(self, approval_id: str, since: float) -> None:
        async with self._op("mark_running"):
            await self._client.zadd(keys.RUNNING_INDEX, {approval_id: float(since)})

    async def update_approval_fields(self, approval_id: str, changes: dict[str, Any]) -> None:
        pairs = _change_pairs(changes)
        if not pairs:
            return
        async with self._op("update_approval_fields"):
            await self._update(keys=[keys.approval(approval_id)], args=pairs)

    async def pending_approvals(self) -> list[Approval]:
        indexed = await self._indexed(keys.PENDING_INDEX, "+inf")
        return [a for a in indexed if a.status is ApprovalStatus.PENDING]

    async def unsettled_approvals(self) -> list[Approval]:
        return await self._indexed(keys.PENDING_INDEX, "+inf")

    async def stalled_approvals(self, claimed_before: float) -> list[Approval]:
        return await self._indexed(keys.RUNNING_INDEX, repr(float(claimed_before)), ApprovalStatus.APPROVED)

    async def _indexed(self, index: str, max_score: str, only: ApprovalStatus | None = None) -> list[Approval]:
        """The approvals of an index, oldest first; entries whose record is gone (or, with `only`, whose status
        is another) are dropped from the index once they are old enough not to be a write in progress."""
        async with self._op("indexed_approvals"):
            scored = cast(
                list[tuple[bytes | str, float]],
                await self._client.zrangebyscore(index, "-inf", max_score, withscores=True),
            )
            ids = [text(member) for member, _ in scored]
            young = {text(member) for member, score in scored if score > time.time() - STALE_AFTER}
            if not ids:
                return []
            # Non-transactional: the records live in different slots; a cluster pipeline splits
            # the batch per node.
            pipe = self._client.pipeline(transaction=False)
            for approval_id in ids:
                pipe.hgetall(keys.approval(approval_id))
            records = await pipe.execute()
            found: list[Approval] = []
            stale: list[str] = []
            for approval_id, raw in zip(ids, records, strict=True):
                approval = _approval_from_hash(raw)
                if approval is not None and (only is None or approval.status is only):
                    found.append(approval)
                elif approval_id not in young:
                    # Gone (keep_for elapsed), or a claim that was indexed but never made.
                    stale.append(approval_id)
            if stale:
                await self._client.zrem(index, *stale)
        return found
