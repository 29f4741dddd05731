"""Durable turns: an accepted message is written to a Redis Stream before the platform gets its ack, and
turn workers consume it through a consumer group.

Once Slack or Teams has had its 200 it never sends the event again, so a process that dies mid-turn must
not lose the request: its entry stays pending in the group, and another worker reclaims it with
XAUTOCLAIM once it has been idle for `claim_idle` seconds. Workers refresh the idle time of the entries
they still own (and only those: an entry taken over while this process was paused is let go), so a slow
model never makes a live turn look dead. A turn that could not run now (the
store failed) is left pending and so comes back after `claim_idle`, up to `max_attempts` runs.

De-duplication and the write are one script: a delivery is marked seen exactly when it is queued, so a
failed write never leaves a mark behind that would drop the platform's retry as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from bot.errors import StoreUnavailable
from bot.store import keys
from bot.store.redis import REDIS_ERRORS, RedisClient, ms, text
from bot.types import Incoming

log = logging.getLogger(__name__)

STREAM = "pb:{turns}:stream"
GROUP = "propbot-turn-workers"
# Delivery ids seen, in the stream's slot so that marking one and queueing it are one script on a cluster too.
SEEN = "pb:{turns}:seen:"

# A turn's run: True when it is settled (answered, or told the user it could not be) and its entry may be
# acknowledged; False to leave it pending, to be run again once it has been idle for `claim_idle`.
RunTurn = Callable[[Incoming, int], Awaitable[bool]]

# KEYS: seen mark, stream. ARGV: mark ttl ms, stream maxlen, the message. 1 = queued, 0 = a duplicate.
_ENQUEUE_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'msg', ARGV[3])
return 1
"""

# KEYS: stream. ARGV: group, consumer, entry ids. Resets the idle time of the entries this consumer still
# owns; returns the ids it no longer owns (acknowledged, or taken over by another worker after a pause).
_KEEP_OWNED = """
local lost = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if entry and entry[2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""


# A worker starts no new turn while its event loop runs this late: the turns it has are using the CPU it has, and
# in a process that also serves the platforms (the in-process worker) the acks come first. What waits stays in
# the queue. Tens of milliseconds is far below any platform's timeout and above a healthy loop's jitter.
LAG_LIMIT = 0.025
LAG_PERIOD = 0.05
READ_BATCH = 32


class LoopLag:
    """How late this event loop ran a timer lately: a measure of how busy the process is."""

    def __init__(self) -> None:
        self.seconds = 0.0

    async def watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            due = loop.time() + LAG_PERIOD
            await asyncio.sleep(LAG_PERIOD)
            self.seconds = max(0.0, loop.time() - due)


class TurnQueue:
    def __init__(
        self,
        client: RedisClient,
        *,
        claim_idle: float = 10.0,
        max_in_flight: int = 500,
        maxlen: int = 100_000,
        max_attempts: int = 6,
    ) -> None:
        self.client = client
        self.claim_idle_ms = int(claim_idle * 1000)
        self.max_in_flight = max_in_flight
        self.maxlen = maxlen
        self.max_attempts = max_attempts
        self._enqueue_once = client.register_script(_ENQUEUE_ONCE)
        self._keep_owned = client.register_script(_KEEP_OWNED)
        # Host and pid say which process holds a pending turn (XPENDING), the random part tells restarts apart.
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._group_ready = False
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.lag = LoopLag()

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def enqueue(self, msg: Incoming, seen_ttl: float) -> bool:
        """Write the message durably unless its delivery id was seen within `seen_ttl` seconds (False: a
        duplicate); raises StoreUnavailable when Redis cannot take it, and then nothing was marked or queued
        (or, if the reply was lost, both were)."""
        try:
            await self._ensure_group()
            queued = await self._enqueue_once(
                keys=[SEEN + msg.event_id, STREAM],
                args=[ms(seen_ttl), self.maxlen, msg.model_dump_json()],
            )
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"turn queue unavailable ({type(exc).__name__})") from None
        return bool(queued)

    async def run(self, run_turn: RunTurn, stop: asyncio.Event, block_ms: int = 1000) -> None:
        """Consume until `stop` is set; survives Redis outages by retrying with a pause."""
        keeper = asyncio.create_task(self._keep_alive(stop))
        watcher = asyncio.create_task(self.lag.watch(stop))
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
                    if room <= 0 or self.lag.seconds > LAG_LIMIT:
                        await asyncio.sleep(0.05)
                        continue
                    # A few at a time, with a beat between: the loop's lag catches up with the turns just started
                    # before more are read.
                    batches: Any = await self.client.xreadgroup(
                        GROUP, self.consumer, {STREAM: ">"}, count=min(room, READ_BATCH), block=block_ms
                    )
                    for _, entries in batches or []:
                        for entry_id, fields in entries:
                            self._start(text(entry_id), fields, run_turn)
                    if batches:
                        await asyncio.sleep(LAG_PERIOD / 5)
                except REDIS_ERRORS as exc:
                    self._group_ready = False
                    log.warning("turn queue unreachable (%s); retrying", type(exc).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            keeper.cancel()
            watcher.cancel()

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
            entry = text(entry_id)
            pending: Any = await self.client.xpending_range(STREAM, GROUP, min=entry, max=entry, count=1)
            attempt = int(pending[0]["times_delivered"]) if pending else 2
            log.warning("took over turn %s (run %d): its worker stopped or could not finish it", entry, attempt)
            self._start(entry, fields, run_turn, attempt)

    def _start(self, entry_id: str, fields: dict[Any, Any], run_turn: RunTurn, attempt: int = 1) -> None:
        if entry_id in self._in_flight:
            return
        raw = fields.get(b"msg") or fields.get("msg")
        self._in_flight[entry_id] = asyncio.create_task(self._work(entry_id, raw, run_turn, attempt))

    async def _work(self, entry_id: str, raw: Any, run_turn: RunTurn, attempt: int) -> None:
        try:
            msg: Incoming | None = None
            try:
                msg = Incoming.model_validate_json(raw)
            except Exception:
                log.error("dropping unreadable turn entry %s", entry_id)
                settled = True
            else:
                settled = await run_turn(msg, attempt)
            if settled:
                await self._ack(entry_id, msg)
        finally:
            self._in_flight.pop(entry_id, None)

    def last_attempt(self, attempt: int) -> bool:
        """Whether a turn on its `attempt`-th run must settle now, one way or another."""
        return attempt >= self.max_attempts

    async def _ack(self, entry_id: str, msg: Incoming | None) -> None:
        """Settle an entry: mark its turn's recorded outcome delivered, acknowledge it and delete it, in one
        round trip (a pipeline, not a script: the outcome is in the conversation's slot, the entry in the
        stream's). Any part may land without the rest: an outcome marked delivered whose entry stays pending
        is only acknowledged by the worker that takes it over; an entry acknowledged is never run again."""
        # An entry left unacknowledged is run again, which the turn's recorded outcome makes harmless (it only
        # re-delivers or acks); retrying for a while still saves the platform a repeated post.
        pause = 0.1
        for _ in range(12):
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    if msg is not None:
                        # XX: only an outcome that was recorded; KEEPTTL: it goes when the dedupe window does.
                        pipe.set(keys.finished(msg.conversation.key, msg.event_id), "d", xx=True, keepttl=True)
                    pipe.xack(STREAM, GROUP, entry_id)
                    pipe.xdel(STREAM, entry_id)
                    await pipe.execute()
                return
            except REDIS_ERRORS:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        log.warning("could not acknowledge turn %s; it will be taken over and settled again", entry_id)

    async def _keep_alive(self, stop: asyncio.Event) -> None:
        """Reset the idle time of the entries this worker still owns; stop the turns of those it lost."""
        period = max(0.2, self.claim_idle_ms / 3000)
        while not stop.is_set():
            await asyncio.sleep(period)
            ids = list(self._in_flight)
            if not ids:
                continue
            try:
                lost = await self._keep_owned(keys=[STREAM], args=[GROUP, self.consumer, *ids])
            except REDIS_ERRORS:
                continue
            for entry_id in map(text, lost):
                task = self._in_flight.get(entry_id)
                if task is not None and not task.done():
                    log.warning("turn %s was taken over by another worker; stopping it here", entry_id)
                    task.cancel()
