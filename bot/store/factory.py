"""Choose the store from configuration."""

from __future__ import annotations

from bot.store.base import Store
from bot.store.memory_store import MemoryStore
from bot.store.redis_store import RedisStore


def make_store(redis_url: str | None, *, history_ttl: float) -> Store:
    """Redis when a URL is configured, else process memory (the caller warns: one process only, and
    state is lost on restart). `redis+cluster://host:port` selects Redis Cluster."""
    if not redis_url:
        return MemoryStore(history_ttl=history_ttl)
    return RedisStore.from_url(redis_url, history_ttl=history_ttl)
