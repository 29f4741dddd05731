"""Fixtures of the fault tests: the proxy in front of the suite's redis-server, and a core wired through it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.core.permissions import parse_permissions
from bot.ingress import turn_queue
from bot.store.redis import RedisClient, _scripts
from tests.faults.proxy import RedisFaultProxy
from tests.support.fake_openai import FakeOpenAI
from tests.support.harness import PERMISSIONS_YAML, Harness, start_process, stop_process, test_settings
from tests.support.redis_server import RedisServer
from tools import Registry
from tools.db import Database

# A worker's polling and heart-beating run on timers; numbering them would make a flow's boundaries move from
# run to run. They still pass through (and are cut with everything else during an outage).
POLLING = frozenset({"XREADGROUP", "XAUTOCLAIM", "XPENDING", "PING"})

MakeFaulty = Callable[..., Awaitable[Harness]]


def every_script() -> list[str]:
    """The Lua of the Redis store and the turn queue."""
    found = [value for name, value in vars(_scripts).items() if name.isupper() and isinstance(value, str)]
    return [*found, turn_queue._ENQUEUE_ONCE, turn_queue._KEEP_OWNED]


async def warm_scripts(client: RedisClient) -> None:
    """Load every script, as a process that has run for a while has: a first call's NOSCRIPT round (EVALSHA,
    SCRIPT LOAD, EVALSHA again) would shift the boundaries a fault is aimed at."""
    for script in every_script():
        await client.script_load(script)


def _sha(script: str) -> bytes:
    return hashlib.sha1(script.encode()).hexdigest().encode()


# The lock keeper's refresh and the queue's heartbeat, by script: they run on timers.
_HEARTBEATS = (_sha(turn_queue._KEEP_OWNED),)


def heartbeat(name: str, command: bytes) -> bool:
    return name == "EVALSHA" and any(sha in command for sha in _HEARTBEATS)


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[RedisFaultProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    fault_proxy = RedisFaultProxy(port, uncounted=POLLING, skip=heartbeat)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.stop()


@pytest.fixture
async def faulty(
    proxy: RedisFaultProxy, fake_openai: FakeOpenAI, sqlite_database: Database
) -> AsyncIterator[MakeFaulty]:
    """Builds a core whose every Redis command goes through the fault proxy (SQLite: the faults are Redis's)."""
    built: list[Harness] = []

    async def make(tools: Registry | None = None, **overrides: Any) -> Harness:
        settings = test_settings(fake_openai, redis_url=proxy.url, **overrides)
        permissions = parse_permissions(PERMISSIONS_YAML)
        harness = Harness(settings, fake_openai, start_process(settings, permissions, sqlite_database, tools=tools))
        built.append(harness)
        await warm_scripts(harness.redis)
        return harness

    yield make
    for harness in built:
        for process in [harness.process, *harness.extra]:
            await stop_process(process)
