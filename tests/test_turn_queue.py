"""Durable turns: accepted messages survive a worker that dies mid-turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.errors import StoreUnavailable
from bot.ingress.dispatch import Dispatcher
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import STREAM, TurnQueue
from bot.store import keys
from bot.types import Incoming, TextReply
from tests.support.fake_openai import text
from tests.support.harness import MANAGER, Harness
from tests.support.recording import RecordingResponder
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually


async def test_queued_turn_is_answered_and_acknowledged(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.push(text("queued answer"))
    queue = TurnQueue(h.redis, claim_idle=5)
    responder = RecordingResponder()
    dispatcher = Dispatcher(h.core, TaskTracker(), queue)
    dispatcher.register("slack", responder)
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(dispatcher.run_queued, stop, block_ms=100))
    msg = h.incoming(MANAGER, "hello queue")
    await dispatcher.submit(msg)
    await dispatcher.submit(msg)  # a redelivery is dropped before it reaches the queue
    await eventually(lambda: responder.delivered)
    stop.set()
    await worker
    assert [r.text for r in responder.delivered[0][1] if isinstance(r, TextReply)] == ["queued answer"]
    assert len(h.fake.requests) == 1
    assert await h.redis.xlen(STREAM) == 0  # acknowledged and deleted
    # ... in the same round trip as the turn's recorded outcome was marked delivered (a worker that took the
    # entry over after a partial write would only acknowledge it)
    assert await h.redis.get(keys.finished(msg.conversation.key, msg.event_id)) == "d"


async def test_a_turn_whose_worker_stopped_is_reclaimed_by_another(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.push(text("answered by worker B"))
    dead = TurnQueue(h.redis, claim_idle=0.6)
    hung = asyncio.Event()

    async def never_finishes(msg: Incoming, attempt: int) -> bool:
        hung.set()
        await asyncio.sleep(3600)
        return True

    stop_dead = asyncio.Event()
    dead_loop = asyncio.create_task(dead.run(never_finishes, stop_dead, block_ms=100))
    dispatcher_a = Dispatcher(h.core, TaskTracker(), dead)
    await dispatcher_a.submit(h.incoming(MANAGER, "please answer"))
    await eventually(hung.is_set)
    stop_dead.set()  # the worker stops heart-beating: it looks dead from outside
    await dead_loop

    agent_b = await h.another_process()
    live = TurnQueue(h.redis, claim_idle=0.6)
    responder = RecordingResponder()
    dispatcher_b = Dispatcher(agent_b.core, TaskTracker(), live)
    dispatcher_b.register("slack", responder)
    stop_live = asyncio.Event()
    live_loop = asyncio.create_task(live.run(dispatcher_b.run_queued, stop_live, block_ms=100))
    await eventually(lambda: responder.delivered)
    stop_live.set()
    await live_loop
    for task in dead._in_flight.values():
        task.cancel()
    replies = responder.delivered[0][1]
    assert isinstance(replies[0], TextReply) and replies[0].text == "answered by worker B"
    assert len(responder.delivered) == 1


async def test_a_slow_live_turn_is_not_stolen(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.latency = 2.0  # much longer than claim_idle: the heartbeat must keep the entry
    h.fake.push(text("slow but single"))
    responders = [RecordingResponder(), RecordingResponder()]
    loops, stops = [], []
    for i, process in enumerate([h.process, await h.another_process()]):
        queue = TurnQueue(h.redis, claim_idle=0.5)
        dispatcher = Dispatcher(process.core, TaskTracker(), queue)
        dispatcher.register("slack", responders[i])
        stop = asyncio.Event()
        stops.append(stop)
        loops.append(asyncio.create_task(queue.run(dispatcher.run_queued, stop, block_ms=100)))
        if i == 0:
            await dispatcher.submit(h.incoming(MANAGER, "slow one"))
    await eventually(lambda: any(r.delivered for r in responders))
    await asyncio.sleep(1.0)
    for stop in stops:
        stop.set()
    await asyncio.gather(*loops)
    assert sum(len(r.delivered) for r in responders) == 1
    assert len(h.fake.requests) == 1


async def test_enqueue_while_redis_is_down_refuses_and_forgets_the_delivery(
    make_harness: Any, redis_server: RedisServer
) -> None:
    h: Harness = await make_harness()
    queue = TurnQueue(h.redis)
    dispatcher = Dispatcher(h.core, TaskTracker(), queue)
    msg = h.incoming(MANAGER, "during the outage")
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await dispatcher.submit(msg)
    finally:
        redis_server.start()
    # The platform redelivers; now it is accepted and queued.
    await dispatcher.submit(msg)
    assert await h.redis.xlen(STREAM) == 1
