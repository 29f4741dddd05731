"""A conversation's history on Redis: read in one script, appended to by compare-and-set in another."""

from __future__ import annotations

import json
from typing import Any

from bot.store import keys
from bot.store.base import Appended, Loaded
from bot.store.redis import _scripts
from bot.store.redis._connection import RedisClient, RedisPart, ms, text


class RedisConversations(RedisPart):
    def __init__(self, client: RedisClient, *, history_ttl: float) -> None:
        super().__init__(client, history_ttl=history_ttl)
        self._load = client.register_script(_scripts.LOAD_HISTORY)
        self._append = client.register_script(_scripts.APPEND_HISTORY)

    async def load_history(self, conversation: str, delivery: str | None = None) -> Loaded:
        names = [keys.history(conversation), keys.version(conversation), keys.finished(conversation, delivery or "-")]
        async with self._op("load_history"):
            got = await self._load(keys=names)
        messages: list[dict[str, Any]] = json.loads(got[0]) if got and got[0] else []
        version = text(got[1]) if len(got) > 1 and got[1] else "0"
        finished = text(got[2]) if delivery and len(got) > 2 and got[2] else None
        return Loaded(messages, version, finished)

    async def append_history(
        self,
        conversation: str,
        messages: list[dict[str, Any]],
        version: str,
        finished: tuple[str, str, float] | None = None,
    ) -> Appended:
        payload = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
        delivery, outcome, keep = finished if finished is not None else ("-", "", 1.0)
        names = [keys.history(conversation), keys.version(conversation), keys.finished(conversation, delivery)]
        async with self._op("append_history"):
            got = await self._append(keys=names, args=[version, payload, ms(self._history_ttl), outcome, ms(keep)])
        if int(got[0]) == 2:
            return Appended(False, text(got[1]))
        return Appended(int(got[0]) == 1)
