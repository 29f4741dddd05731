"""Durable turns: an accepted message is written to a Redis Stream before the platform gets its ack, and
turn workers consume it through a consumer group.

Once Slack or Teams has had its 200 it never sends the event again, so a process that dies mid-turn must
not lose the request: its entry stays pending in the group, and another worker reclaims it with
XAUTOCLAIM once it has been idle for `claim_idle` seconds. Workers refresh the idle time of the entries
they are still working on, so a slow model never makes a live turn look dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from bot.errors import StoreUnavailable
from bot.store.redis import REDIS_ERRORS, RedisClient, text
from bot.types import Incoming

log = logging.getLogger(__name__)

STREAM = "pb:{turns}:stream"
GROUP = "propbot-turn-workers"

RunTurn = Callable[[Incoming], Awaitable[None]]


class TurnQueue:
    def __init__(
        self,
        client: RedisClient,
        *,
        claim_idle: float = 60.0,
        max_in_flight: int = 32,
        maxlen: int = 100_000,
    ) -> None:
        self.client = client
        self.claim_idle_ms = int(claim_idle * 1000)
        self.max_in_flight = max_in_flight
        self.maxlen = maxlen
        self.consumer = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._group_ready = False
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def enqueue(self, msg: Incoming) -> str:
        """Write the message durably; raises StoreUnavailable when Redis cannot take it."""
        try:
            await self._ensure_group()
            entry = await self.client.xadd(STREAM, {"msg": msg.model_dump_json()}, maxlen=self.maxlen, approximate=True)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"turn queue unavailable ({type(exc).__name__})") from None
        return text(entry)

    async def run(self, run_turn: RunTurn, stop: asyncio.Event, block_ms: int = 1000) -> None:
        """Consume until `stop` is set; survives Redis outages by retrying with a pause."""
        keeper = asyncio.create_task(self._keep_alive(stop))
        next_claim = 0.0
        try:
            while not stop.is_set():
                try:
                    await self._ensure_group()
                    # Reclaiming is for the rare dead worker: checking twice per claim_idle is enough, and
                    # keeps XAUTOCLAIM off the per-turn path.
                    if time.monotonic() >= next_claim:
                        next_claim = time.monotonic() + self.claim_idle_ms / 2000
                        await self._claim_abandoned(run_turn)
                    room = self.max_in_flight - len(self._in_flight)
                    if room <= 0:
                        await asyncio.sleep(0.05)
                        continue
                    batches: Any = await self.client.xreadgroup(
                        GROUP, self.consumer, {STREAM: ">"}, count=room, block=block_ms
                    )
                    for _, entries in batches or []:
                        for entry_id, fields in entries:
                            self._start(text(entry_id), fields, run_turn)
                except REDIS_ERRORS as exc:
                    self._group_ready = False
                    log.warning("turn queue unreachable (%s); retrying", type(exc).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            keeper.cancel()

    async def drain(self, grace: float) -> None:
        """Let in-flight turns finish; whatever is cut off stays pending for another worker to reclaim."""
        tasks = list(self._in_flight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()

    async def _claim_abandoned(self, run_turn: RunTurn) -> None:
        reply = await self.client.xautoclaim(
            STREAM, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=10
        )
        for entry_id, fields in reply[1] if len(reply) > 1 else []:
            if fields is None:
                continue  # trimmed away
            log.warning("reclaimed turn %s from a worker that stopped answering", text(entry_id))
            self._start(text(entry_id), fields, run_turn)

    def _start(self, entry_id: str, fields: dict[Any, Any], run_turn: RunTurn) -> None:
        if entry_id in self._in_flight:
            return
        raw = fields.get(b"msg") or fields.get("msg")
        self._in_flight[entry_id] = asyncio.create_task(self._work(entry_id, raw, run_turn))

    async def _work(self, entry_id: str, raw: Any, run_turn: RunTurn) -> None:
        try:
            try:
                msg = Incoming.model_validate_json(raw)
            except Exception:
                log.error("dropping unreadable turn entry %s", entry_id)
            else:
                await run_turn(msg)
            await self._ack(entry_id)
        finally:
            self._in_flight.pop(entry_id, None)

    async def _ack(self, entry_id: str) -> None:
        for _ in range(5):
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.xack(STREAM, GROUP, entry_id)
                pipe.xdel(STREAM, entry_id)
                await pipe.execute()
                return
            except REDIS_ERRORS:
                await asyncio.sleep(0.5)
        log.warning("could not acknowledge turn %s; it may be reclaimed and answered again", entry_id)

    async def _keep_alive(self, stop: asyncio.Event) -> None:
        """Reset the idle time of entries still being worked on (XCLAIM JUSTID to ourselves)."""
        period = max(0.2, self.claim_idle_ms / 3000)
        while not stop.is_set():
            await asyncio.sleep(period)
            ids: list[str | bytes | int | memoryview[int]] = list(self._in_flight)
            if not ids:
                continue
            with contextlib.suppress(*REDIS_ERRORS):
                await self.client.xclaim(STREAM, GROUP, self.consumer, 0, ids, justid=True)
