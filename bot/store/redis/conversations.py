"""A conversation's history and lock on Redis: lock + load in one script, save + release in one transaction."""

from __future__ import annotations

import json
import secrets
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from bot.store import keys
from bot.store.redis import _scripts
from bot.store.redis._connection import RedisClient, RedisPart, ms


class RedisConversations(RedisPart):
    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        super().__init__(client, history_ttl=history_ttl)
        self._release = client.register_script(_scripts.RELEASE)
        self._lock_load = client.register_script(_scripts.LOCK_AND_LOAD)
        self._extend = client.register_script(_scripts.EXTEND)

    async def lock_and_load(self, conversation: str, ttl: float) -> tuple[str | None, list[dict[str, Any]]]:
        token = secrets.token_hex(16)
        lock_key, history_key = keys.lock(conversation), keys.history(conversation)
        async with self._op("lock_and_load"):
            # Both keys carry the conversation's hash tag: one slot, so valid on a cluster.
            got = await self._lock_load(keys=[lock_key, history_key], args=[token, ms(ttl)])
        if not got or not got[0]:
            return None, []
        messages: list[dict[str, Any]] = json.loads(got[1]) if len(got) > 1 and got[1] else []
        return token, messages

    async def release_lock(self, conversation: str, token: str) -> bool:
        async with self._op("release_lock"):
            return bool(await self._release(keys=[keys.lock(conversation)], args=[token]))

    async def extend_lock(self, conversation: str, token: str, ttl: float) -> bool:
        async with self._op("extend_lock"):
            return bool(await self._extend(keys=[keys.lock(conversation)], args=[token, ms(ttl)]))

    async def save_history(
        self, conversation: str, messages: list[dict[str, Any]], *, release_token: str | None = None
    ) -> None:
        payload = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
        history_key, ttl = keys.history(conversation), ms(self._history_ttl)
        async with self._op("save_history"):
            if release_token is None:
                await self._client.set(history_key, payload, px=ttl)
                return
            lock_key = keys.lock(conversation)
            if isinstance(self._client, RedisCluster):
                # The cluster transaction pipeline resolves each queued command's slot in a
                # throwaway thread and event loop, and would run a pending topology discovery
                # there too; do that discovery here, on our loop (a no-op when up to date).
                await self._client.initialize()
            # Raw EVALSHA rather than the Script object: redis-py would add SCRIPT EXISTS (+LOAD)
            # round trips before every pipeline that carries a Script, and ClusterPipeline blocks
            # its `evalsha` method outright. Both keys share the conversation's hash tag, so this
            # MULTI/EXEC is valid on a cluster.
            pipe = self._client.pipeline(transaction=True)
            pipe.set(history_key, payload, px=ttl)
            pipe.execute_command("EVALSHA", self._release.sha, 1, lock_key, release_token)
            results = await pipe.execute(raise_on_error=False)
            if isinstance(results[0], Exception):
                raise results[0]
            if isinstance(results[1], NoScriptError):
                # Script cache empty (server restarted or failed over): the history is saved; the
                # compare-and-delete is idempotent, so running it now keeps the same meaning.
                await self._release(keys=[lock_key], args=[release_token])
            elif isinstance(results[1], Exception):
                raise results[1]
