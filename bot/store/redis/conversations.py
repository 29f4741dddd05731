"""A conversation's history and lock on Redis: lock + load in one script, save + release in another."""

from __future__ import annotations

import json
import secrets
from typing import Any

from bot.errors import LockLost
from bot.store import keys
from bot.store.base import Locked
from bot.store.redis import _scripts
from bot.store.redis._connection import RedisClient, RedisPart, ms, text


class RedisConversations(RedisPart):
    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        super().__init__(client, history_ttl=history_ttl)
        self._release = client.register_script(_scripts.RELEASE)
        self._lock_load = client.register_script(_scripts.LOCK_AND_LOAD)
        self._extend = client.register_script(_scripts.EXTEND)
        self._save = client.register_script(_scripts.SAVE_TURN)

    async def lock_and_load(self, conversation: str, ttl: float, delivery: str | None = None) -> Locked:
        token = secrets.token_hex(16)
        # Every key carries the conversation's hash tag: one slot, so valid on a cluster.
        names = [keys.lock(conversation), keys.history(conversation), keys.finished(conversation, delivery or "-")]
        async with self._op("lock_and_load"):
            got = await self._lock_load(keys=names, args=[token, ms(ttl)])
        if not got or not got[0]:
            return Locked(None, [])
        messages: list[dict[str, Any]] = json.loads(got[1]) if len(got) > 1 and got[1] else []
        finished = text(got[2]) if delivery and len(got) > 2 and got[2] else None
        return Locked(token, messages, finished)

    async def release_lock(self, conversation: str, token: str) -> bool:
        async with self._op("release_lock"):
            return bool(await self._release(keys=[keys.lock(conversation)], args=[token]))

    async def extend_lock(self, conversation: str, token: str, ttl: float) -> bool:
        async with self._op("extend_lock"):
            return bool(await self._extend(keys=[keys.lock(conversation)], args=[token, ms(ttl)]))

    async def save_history(
        self,
        conversation: str,
        messages: list[dict[str, Any]],
        *,
        release_token: str | None = None,
        finished: tuple[str, str, float] | None = None,
    ) -> None:
        payload = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
        history_key, ttl = keys.history(conversation), ms(self._history_ttl)
        if release_token is None:
            async with self._op("save_history"):
                await self._client.set(history_key, payload, px=ttl)
            return
        delivery, outcome, keep = finished if finished is not None else ("-", "", 1.0)
        names = [keys.lock(conversation), history_key, keys.finished(conversation, delivery)]
        async with self._op("save_history"):
            saved = await self._save(keys=names, args=[release_token, payload, ttl, outcome, ms(keep)])
        if not saved:
            raise LockLost(conversation)
