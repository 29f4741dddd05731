"""Reusing answers of read-only tools for a short while, and forgetting them when a write changes data.

A tool opts in with `cache_ttl` (and optionally `cache_key`, to normalise arguments the way it reads
them anyway); a writing tool lists in `invalidates` the tools whose answers it makes stale. Only ok
results are kept. Staleness is decided by per-tool generation counters in the store: a write bumps
them, and an answer is only stored under the generation that was current *before* the tool ran, so a
read that raced a write can never plant the pre-write answer after it.

The cache is an optimisation: when the store fails, a lookup is a miss and a write is skipped.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging

from pydantic import BaseModel, ValidationError

from bot.errors import StoreUnavailable
from bot.observability import metrics
from bot.store.base import CacheStore
from tools.registry import ToolResult, ToolSpec

log = logging.getLogger(__name__)

# The generation a `get` saw, handed to the `after_call` of the same call. ToolRunner awaits both in
# one task and concurrent calls run in tasks of their own, so each call sees only its own lookup.
_seen: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar("tool_cache_seen", default=None)


def digest(spec: ToolSpec, args: BaseModel) -> str:
    """A stable hash of the arguments as the tool understands them."""
    identity = spec.cache_key(args) if spec.cache_key is not None else args.model_dump(mode="json")
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ToolCache:
    def __init__(self, store: CacheStore) -> None:
        self.store = store

    async def get(self, spec: ToolSpec, args: BaseModel) -> ToolResult | None:
        _seen.set(None)
        if not spec.cache_ttl:
            return None
        key = digest(spec, args)
        try:
            value, generation = await self.store.cache_get(spec.name, key)
        except StoreUnavailable as exc:
            _unavailable("lookup", exc)
            return None
        _seen.set((spec.name, key, generation))
        if value is None:
            return None
        try:
            return ToolResult.model_validate_json(value)
        except ValidationError:
            # Written by a version with another result shape: run the tool and overwrite it.
            return None

    async def after_call(self, spec: ToolSpec, args: BaseModel, result: ToolResult) -> None:
        seen = _seen.get()
        _seen.set(None)
        try:
            if spec.invalidates:
                # Whatever the outcome: a write that failed or timed out may still have changed data.
                await self.store.cache_invalidate(spec.invalidates)
            if spec.cache_ttl and result.ok and seen is not None and seen[0] == spec.name:
                tool, key, generation = seen
                await self.store.cache_put(tool, key, generation, result.model_dump_json(), spec.cache_ttl)
        except StoreUnavailable as exc:
            _unavailable("update", exc)


def _unavailable(what: str, exc: StoreUnavailable) -> None:
    metrics.ERRORS.labels("cache_unavailable").inc()
    log.warning("tool cache %s skipped: %s", what, exc)
