"""The state store on Redis, shared by every bot process. Works on one server and on Redis Cluster.

Cluster rules followed throughout: each command touches one key, or keys sharing one hash tag (see
`bot.store.keys`); scripts run by EVALSHA name all their keys, and the keys of one script share a hash tag
(a turn's save: one conversation's lock, history and outcome). Each concern lives in a module of its own;
`RedisStore` is all of them on one client.
"""

from __future__ import annotations

from typing import Any

from bot.store.redis._connection import REDIS_ERRORS, RedisClient, connect, ms, text
from bot.store.redis.approvals import RedisApprovals
from bot.store.redis.conversations import RedisConversations
from bot.store.redis.counters import RedisCache, RedisCounters, RedisDeliveries

__all__ = ["REDIS_ERRORS", "RedisClient", "RedisStore", "connect", "ms", "text"]

DEFAULT_HISTORY_TTL = 30 * 24 * 3600.0


class RedisStore(RedisConversations, RedisDeliveries, RedisApprovals, RedisCounters, RedisCache):
    def __init__(self, client: RedisClient, *, history_ttl: float = DEFAULT_HISTORY_TTL) -> None:
        super().__init__(client, history_ttl=history_ttl)

    @classmethod
    def from_url(cls, url: str, *, history_ttl: float = DEFAULT_HISTORY_TTL, **overrides: Any) -> RedisStore:
        return cls(connect(url, **overrides), history_ttl=history_ttl)
