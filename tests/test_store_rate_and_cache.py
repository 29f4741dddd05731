"""Rate limits and the tool cache at the Store level: memory, Redis and Redis Cluster behave alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Connection

from bot.store import keys
from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.redis import RedisStore
from tests.support.waiting import eventually


@pytest.fixture(params=["memory", "redis", "cluster"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on the same state, like two bot processes."""
    if request.param == "memory":
        memory = MemoryStore()
        yield memory, memory
        return
    url: str = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    first, second = RedisStore.from_url(url), RedisStore.from_url(url)
    # A cold redis-py RedisCluster client fails (AttributeError in connect) when its very first
    # commands arrive concurrently: a start-up concern of the store, not what these tests are about.
    for store in (first, second):
        assert await store.ping()
    yield first, second
    await first.close()
    await second.close()


# -- rate limits ---------------------------------------------------------------------------------


async def test_user_limit_allows_n_then_refuses_with_a_wait(stores: tuple[Store, Store]) -> None:
    a, b = stores
    limits = [("ws", 100), ("u:alice", 3)]
    for store in (a, b, a):
        assert await store.take_rate("slack:T1", limits, 60.0) == (0.0, "")
    wait, name = await b.take_rate("slack:T1", limits, 60.0)
    assert name == "u:alice"
    assert 19.0 < wait <= 20.0  # one interval: 60 s / 3
    # Another user of the same workspace is not affected.
    assert await a.take_rate("slack:T1", [("ws", 100), ("u:bob", 3)], 60.0) == (0.0, "")


async def test_workspace_limit_counts_every_user_and_refusals_count_nothing(stores: tuple[Store, Store]) -> None:
    a, b = stores
    for i in range(4):
        assert (await (a if i % 2 else b).take_rate("slack:T9", [("ws", 4), (f"u:{i}", 10)], 60.0))[1] == ""
    for _ in range(3):
        wait, name = await a.take_rate("slack:T9", [("ws", 4), ("u:new", 10)], 60.0)
        assert name == "ws" and 14.0 < wait <= 15.0
    # The refusals did not use up u:new's own allowance, nor another workspace's.
    assert await a.take_rate("slack:T8", [("ws", 4), ("u:new", 1)], 60.0) == (0.0, "")


async def test_the_allowance_comes_back_after_the_interval(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    limits = [("u:x", 2)]
    assert (await a.take_rate("teams:tenant", limits, 0.4))[1] == ""
    assert (await a.take_rate("teams:tenant", limits, 0.4))[1] == ""
    wait, name = await a.take_rate("teams:tenant", limits, 0.4)
    assert name == "u:x" and 0 < wait <= 0.2
    await asyncio.sleep(wait + 0.05)
    assert (await a.take_rate("teams:tenant", limits, 0.4))[1] == ""


async def test_concurrent_takes_never_exceed_the_limit(stores: tuple[Store, Store]) -> None:
    a, b = stores
    results = await asyncio.gather(*((a if i % 2 else b).take_rate("slack:T1", [("u:z", 7)], 60.0) for i in range(30)))
    assert sum(1 for _, name in results if not name) == 7


async def test_rate_keys_of_one_workspace_share_a_slot() -> None:
    from redis.crc import key_slot

    slots = {key_slot(keys.rate("slack:T1", name).encode()) for name in ("ws", "u:slack:T1:U1", "u:slack:T1:U2")}
    assert len(slots) == 1


# -- cache -------------------------------------------------------------------------------------


async def test_cache_put_get_and_invalidate(stores: tuple[Store, Store]) -> None:
    a, b = stores
    value, generation = await a.cache_get("get_property", "d1")
    assert value is None
    assert await a.cache_put("get_property", "d1", generation, '{"ok":true,"data":1}', 30)
    assert (await b.cache_get("get_property", "d1"))[0] == '{"ok":true,"data":1}'
    await b.cache_invalidate(["get_property", "list_maintenance_requests"])
    value, newer = await a.cache_get("get_property", "d1")
    assert value is None and newer != generation


async def test_a_put_from_before_a_write_is_dropped(stores: tuple[Store, Store]) -> None:
    a, b = stores
    _, seen = await a.cache_get("list_maintenance_requests", "d")
    await b.cache_invalidate(["list_maintenance_requests"])  # a write lands while the read runs
    assert not await a.cache_put("list_maintenance_requests", "d", seen, "stale", 30)
    assert (await a.cache_get("list_maintenance_requests", "d"))[0] is None


async def test_values_with_separators_and_unicode_round_trip(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    value = '{"a":"x|y","b":"Zürich 🏠"}'
    _, generation = await a.cache_get("t", "d")
    await a.cache_put("t", "d", generation, value, 30)
    assert (await a.cache_get("t", "d"))[0] == value


async def test_cache_entries_expire(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    _, generation = await a.cache_get("t", "d")
    await a.cache_put("t", "d", generation, "v", 0.1)

    async def expired() -> bool:
        return (await a.cache_get("t", "d"))[0] is None

    await eventually(expired)


class CountingConnection(Connection):
    """Counts what is written to the socket: one write per command or pipeline = one round trip."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


async def test_each_cache_and_rate_step_is_one_round_trip(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, connection_class=CountingConnection)
    try:
        # Load the scripts first: a cold script cache costs one extra EVALSHA + EVAL once per process.
        _, generation = await store.cache_get("t", "warm")
        await store.cache_put("t", "warm", generation, "v", 30)
        await store.cache_invalidate(["t"])
        await store.take_rate("slack:T1", [("ws", 5)], 60)
        steps: dict[str, int] = {}
        operations: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("cache_get", lambda: store.cache_get("t", "d")),
            ("cache_put", lambda: store.cache_put("t", "d", "1", "v", 30)),
            ("cache_invalidate", lambda: store.cache_invalidate(["t", "u"])),
            ("take_rate", lambda: store.take_rate("slack:T1", [("ws", 5), ("u:a", 5)], 60)),
        ]
        for name, step in operations:
            before = CountingConnection.sent
            await step()
            steps[name] = CountingConnection.sent - before
        assert steps == {"cache_get": 1, "cache_put": 1, "cache_invalidate": 1, "take_rate": 1}
    finally:
        await store.close()
