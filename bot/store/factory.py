"""Choose the store from configuration."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.redis import RedisClient, RedisStore, connect


@dataclass(frozen=True)
class OpenedStore:
    store: Store
    # The process's one Redis client, which the turn queue and the audit stream use too; None in memory.
    redis: RedisClient | None


def open_store(redis_url: str | None, *, history_ttl: float) -> OpenedStore:
    """Redis when a URL is configured, else process memory (the caller warns: one process only, and
    state is lost on restart). `redis+cluster://host:port` selects Redis Cluster."""
    if not redis_url:
        return OpenedStore(MemoryStore(history_ttl=history_ttl), None)
    client = connect(redis_url)
    return OpenedStore(RedisStore(client, history_ttl=history_ttl), client)


def make_store(redis_url: str | None, *, history_ttl: float) -> Store:
    return open_store(redis_url, history_ttl=history_ttl).store
