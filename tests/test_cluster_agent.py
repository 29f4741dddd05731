"""The whole agent on a local three-master Redis Cluster: every multi-key step stays in one hash slot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.ingress.dispatch import Dispatcher
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import STREAM, TurnQueue
from bot.store.redis import RedisStore
from bot.types import ApprovalRequest, DecisionOutcome, TextReply
from tests.support.fake_openai import call, calls, text
from tests.support.harness import MANAGER, STAFF, Harness
from tests.support.recording import RecordingResponder
from tests.support.scripts import SCHEDULE, requests_with_key
from tests.support.waiting import eventually


async def test_turns_approvals_and_queue_on_a_cluster(make_harness: Any, redis_cluster_url: str) -> None:
    h: Harness = await make_harness(url=redis_cluster_url)
    assert isinstance(h.store, RedisStore) and "Cluster" in type(h.redis).__name__

    # Conversations in many channels land on different slots / masters.
    h.fake.default = lambda r: text("ok")
    await asyncio.gather(*(h.say(MANAGER, f"hello {i}", channel=f"C{i}") for i in range(12)))
    h.fake.push(text("remembered"))
    await h.say(MANAGER, "again", channel="C3")
    assert "hello 3" in json.dumps(h.fake.requests[-1]["messages"])
    assert "hello 4" not in json.dumps(h.fake.requests[-1]["messages"])

    # An approval decided concurrently through two cluster clients runs once.
    h.fake.default = None
    h.fake.push(calls(call("schedule_maintenance", SCHEDULE)), text("waiting"))
    replies = await h.say(STAFF, "schedule it", channel="CAPPROVE")
    [request] = [r for r in replies if isinstance(r, ApprovalRequest)]
    h.fake.default = lambda r: text("done")
    other = await h.another_process()
    results = await asyncio.gather(
        *(h.decide(request.approval.id, MANAGER, process=other if i % 2 else None) for i in range(10))
    )
    assert [r.outcome for r in results].count(DecisionOutcome.DONE) == 1
    assert await requests_with_key(h.db, request.approval.id) == 1

    # The durable turn queue works on the cluster too.
    queue = TurnQueue(h.redis, claim_idle=5)
    responder = RecordingResponder()
    dispatcher = Dispatcher(h.core, TaskTracker(), queue)
    dispatcher.register("slack", responder)
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(dispatcher.run_queued, stop, block_ms=100))
    await dispatcher.submit(h.incoming(MANAGER, "queued on the cluster", channel="CQ"))
    await eventually(lambda: responder.delivered)
    stop.set()
    await worker
    reply = responder.delivered[0][1][0]
    assert isinstance(reply, TextReply) and reply.text == "done"
    assert await h.redis.xlen(STREAM) == 0
