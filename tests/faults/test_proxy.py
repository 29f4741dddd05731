"""The fault proxy itself: it numbers commands, and each fault kind does what it says at that command."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, TimeoutError

from tests.faults.proxy import Fault, RedisFaultProxy


def client(proxy: RedisFaultProxy) -> aioredis.Redis:
    # No client-side retry: each test sees exactly what the fault did to one command.
    return aioredis.Redis(port=proxy.port, socket_timeout=0.5, decode_responses=True, retry=Retry(NoBackoff(), 0))


async def test_commands_are_numbered_across_pipelines(proxy: RedisFaultProxy) -> None:
    proxy.arm(None)
    async with client(proxy) as r:
        await r.set("a", "1")
        pipe = r.pipeline(transaction=True)
        pipe.set("b", "2")
        pipe.get("a")
        assert await pipe.execute() == [True, "1"]
    assert proxy.commands[-5:] == ["SET", "MULTI", "SET", "GET", "EXEC"]


@pytest.mark.parametrize(("kind", "ran"), [("drop", False), ("lost", True), ("stall", True)])
async def test_each_fault_kind(proxy: RedisFaultProxy, redis_url: str, kind: str, ran: bool) -> None:
    async with client(proxy) as r:
        await r.ping()
        proxy.arm(Fault(at=1, kind=kind, stall=1.0))
        with pytest.raises((ConnectionError, TimeoutError)):
            await r.set("faulted", "1")
        assert proxy.fired.is_set()
    direct = aioredis.Redis.from_url(redis_url, decode_responses=True)
    async with direct:
        assert (await direct.get("faulted") == "1") is ran


async def test_an_outage_refuses_new_connections_for_its_duration(proxy: RedisFaultProxy) -> None:
    proxy.arm(Fault(at=1, kind="drop", down_for=0.5))
    async with client(proxy) as r:
        with pytest.raises(ConnectionError):
            await r.set("x", "1")
    async with client(proxy) as fresh:
        with pytest.raises(ConnectionError):
            await fresh.ping()
    await asyncio.sleep(0.6)
    async with client(proxy) as later:
        assert await later.ping()
