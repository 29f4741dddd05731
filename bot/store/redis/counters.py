"""The small parts of the Redis store: delivery de-duplication, rate-limit counters, the tool cache."""

from __future__ import annotations

from collections.abc import Sequence

from bot.store import keys
from bot.store.redis import _scripts
from bot.store.redis._connection import RedisClient, RedisPart, ms, text


class RedisDeliveries(RedisPart):
    # -- delivery de-duplication ---------------------------------------------------------------
    async def first_delivery(self, event_id: str, ttl: float) -> bool:
        async with self._op("first_delivery"):
            return bool(await self._client.set(keys.dedupe(event_id), "1", nx=True, px=ms(ttl)))

    async def forget_delivery(self, event_id: str) -> None:
        async with self._op("forget_delivery"):
            await self._client.delete(keys.dedupe(event_id))

    # -- notes -----------------------------------------------------------------------------------
    async def put_note(self, key: str, value: str, ttl: float) -> None:
        async with self._op("put_note"):
            await self._client.set(keys.note(key), value, px=ms(ttl))

    async def get_note(self, key: str) -> str | None:
        async with self._op("get_note"):
            found = await self._client.get(keys.note(key))
        return None if found is None else text(found)


class RedisCounters(RedisPart):
    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        super().__init__(client, history_ttl=history_ttl)
        self._rate = client.register_script(_scripts.RATE)

    # -- rate limits -----------------------------------------------------------------------------
    async def take_rate(self, group: str, limits: Sequence[tuple[str, int]], window: float) -> tuple[float, str]:
        if not limits:
            return 0.0, ""
        window_us = max(1, int(window * 1_000_000))
        async with self._op("take_rate"):
            wait_us, worst = await self._rate(
                keys=[keys.rate(group, name) for name, _ in limits],
                args=[window_us, *(limit for _, limit in limits)],
            )
        if not int(worst):
            return 0.0, ""
        return int(wait_us) / 1_000_000, limits[int(worst) - 1][0]


class RedisCache(RedisPart):
    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        super().__init__(client, history_ttl=history_ttl)
        self._cache_get = client.register_script(_scripts.CACHE_GET)
        self._cache_put = client.register_script(_scripts.CACHE_PUT)
        self._cache_invalidate = client.register_script(_scripts.CACHE_INVALIDATE)

    # -- read-only tool cache ----------------------------------------------------------------------
    async def cache_get(self, tool: str, digest: str) -> tuple[str | None, str]:
        async with self._op("cache_get"):
            reply = await self._cache_get(keys=[keys.cache_generation(tool), keys.cache_entry(tool, digest)])
        generation = text(reply[0])
        return (text(reply[1]) if len(reply) > 1 else None), generation

    async def cache_put(self, tool: str, digest: str, generation: str, value: str, ttl: float) -> bool:
        async with self._op("cache_put"):
            stored = await self._cache_put(
                keys=[keys.cache_generation(tool), keys.cache_entry(tool, digest)],
                args=[generation, value, ms(ttl)],
            )
        return bool(stored)

    async def cache_invalidate(self, tools: Sequence[str]) -> None:
        if not tools:
            return
        async with self._op("cache_invalidate"):
            await self._cache_invalidate(keys=[keys.cache_generation(tool) for tool in tools])
