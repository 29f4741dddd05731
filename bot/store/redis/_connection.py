"""One Redis client for every part of propbot in a process (the store, the turn queue, the audit stream),
and the pieces the Redis store's modules share: the error net, the cluster discovery, number and text codecs.

URLs: `redis://` / `rediss://` give a single-server client; `redis+cluster://host:port` (or
`rediss+cluster://` for TLS) gives a RedisCluster client with that host as startup node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisClusterException, RedisError

from bot.errors import StoreUnavailable

RedisClient = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# redis-py raises RedisClusterException (not a RedisError) when no cluster node answers.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
# Connections one process opens to one server. redis-py's own pools raise "Too many connections" past 100
# commands in flight, which hundreds of turns at once reach: a single server's pool makes a command wait for a
# free connection instead (commands take well under a millisecond, so 200 serve thousands a second). A cluster
# node's pool cannot wait in redis-py; it gets room for every turn a worker runs instead.
MAX_CONNECTIONS = 200
CLUSTER_NODE_MAX_CONNECTIONS = 5000


def connect(url: str, **overrides: Any) -> RedisClient:
    """A client for `url`; it connects lazily (the first command connects). `overrides` replace the options."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": 5.0,
        # PING connections idle this long before reuse, so a restarted server is noticed early.
        "health_check_interval": 15,
        # Connection errors only: a timed-out SET NX may have run, and repeating it would then
        # report "duplicate" / "lock held" for our own write. (RedisCluster ignores the error
        # list and retries its own fixed set, timeouts included, `retries` times.)
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(ConnectionError,)),
        "decode_responses": True,
    }
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in CLUSTER_SCHEMES:
        options["max_connections"] = CLUSTER_NODE_MAX_CONNECTIONS
        options.update(overrides)
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}", **options)
    # Waiting for a connection is bounded like a command is: past it, the store counts as unavailable.
    options.update(max_connections=MAX_CONNECTIONS, timeout=options["socket_timeout"])
    options.update(overrides)
    return Redis.from_pool(BlockingConnectionPool.from_url(url, **options))


def ms(ttl: float) -> int:
    # Redis rejects a zero expiry; round up so a tiny ttl still expires at all.
    return max(1, int(ttl * 1000))


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@asynccontextmanager
async def unavailable(operation: str) -> AsyncIterator[None]:
    """Redis errors become StoreUnavailable, naming the operation and the error class only: redis messages
    can carry host names, and the URL a password."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(f"redis {operation} failed ({type(exc).__name__})") from exc


class RedisPart:
    """What every part of the Redis store stands on: the shared client and the error net around each call."""

    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        self._client = client
        self._history_ttl = history_ttl
        self._cluster_ready = False
        self._init_lock = asyncio.Lock()

    @property
    def client(self) -> RedisClient:
        return self._client

    @asynccontextmanager
    async def _op(self, operation: str) -> AsyncIterator[None]:
        async with unavailable(operation):
            if isinstance(self._client, RedisCluster) and not self._cluster_ready:
                # A new cluster client given several commands at once races its own discovery and
                # crashes (redis-py 8.1: AttributeError in a connection). Discover once, serially.
                async with self._init_lock:
                    if not self._cluster_ready:
                        await self._client.initialize()
                        self._cluster_ready = True
            yield

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except REDIS_ERRORS:
            return False

    async def close(self) -> None:
        await self._client.aclose()
