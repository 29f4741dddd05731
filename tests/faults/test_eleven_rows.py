"""The eleven ways a single fault lost a message, lost an approved action, ran a turn twice or told the user
something false (issue 12), each reproduced on the real stack: the suite's redis-server behind the fault
proxy, SQLite, the fake OpenAI server. Every test here failed before the fix it is named after."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from bot.config import Settings
from bot.errors import StoreUnavailable
from bot.ingress.dispatch import Dispatcher
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import GROUP, STREAM, TurnQueue
from bot.store import keys
from bot.store.redis import _scripts
from bot.types import (
    ApprovalStatus,
    DecisionOutcome,
    Incoming,
    TextReply,
)
from tests.faults.conftest import MakeFaulty
from tests.faults.proxy import Fault, RedisFaultProxy, command, script
from tests.support.fake_openai import Fault as ModelFault
from tests.support.fake_openai import text, unstamped
from tests.support.harness import MANAGER, MANAGER2
from tests.support.peek import history_of
from tests.support.recording import RecordingResponder
from tests.support.scripts import ask_for_approval, requests_with_key
from tests.support.waiting import eventually
from tools import Registry, builtin_tools
from tools.maintenance import ScheduleMaintenanceArgs, schedule_maintenance
from tools.registry import ToolContext, ToolResult

OUTAGE = 2.0  # long enough that redis-py's own retries (about 0.3 s) give up


async def redis_back() -> None:
    await asyncio.sleep(OUTAGE + 0.2)


async def test_row_1_a_claim_whose_reply_is_lost_is_still_finished(faulty: MakeFaulty, proxy: RedisFaultProxy) -> None:
    h = await faulty()
    approval = (await ask_for_approval(h)).approval
    # The claim runs in Redis; its reply never arrives, and Redis stays away for a while.
    proxy.arm(Fault(at=1, kind="lost", down_for=OUTAGE, when=command("EVALSHA", "pb:approval:")))
    result = await h.decide(approval.id, MANAGER)
    assert proxy.fired.is_set()
    assert "nothing was changed" not in result.message  # it may well have been
    await redis_back()
    [finished] = await h.desk.recover_stalled(older_than=0)  # the sweeper, once the claim looks stalled
    assert finished.outcome is DecisionOutcome.DONE
    assert await requests_with_key(h.db, approval.id) == 1
    assert (await h.decide(approval.id, MANAGER)).outcome is DecisionOutcome.ALREADY_DECIDED
    assert await requests_with_key(h.db, approval.id) == 1


async def test_row_2_a_store_error_after_the_tool_ran_is_not_called_nothing_changed(
    faulty: MakeFaulty, proxy: RedisFaultProxy
) -> None:
    h = await faulty()
    approval = (await ask_for_approval(h)).approval
    # The second transition of the approval is the result (approved -> done), after the tool ran.
    proxy.arm(Fault(at=2, kind="drop", down_for=OUTAGE, when=command("EVALSHA", "pb:approval:")))
    result = await h.decide(approval.id, MANAGER)
    assert proxy.fired.is_set()
    assert await requests_with_key(h.db, approval.id) == 1
    assert "nothing was changed" not in result.message and result.message.startswith("Approved and done")
    await redis_back()
    [recorded] = await h.desk.recover_stalled(older_than=0)
    assert recorded.outcome is DecisionOutcome.DONE
    assert await requests_with_key(h.db, approval.id) == 1  # the rerun found what the first run did
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.DONE


async def test_row_3_a_turn_that_ran_beside_another_never_overwrites_its_exchange(
    faulty: MakeFaulty, proxy: RedisFaultProxy
) -> None:
    """Two turns of one conversation overlap: the second finishes first; the first's append finds the history moved
    on (and its first try meets a dropped connection) and lands after it, whole. Row 3 used to be a lock that one
    refresh error let a second turn take: there is no lock to lose now, only a compare-and-set."""
    h = await faulty()
    slow = asyncio.Event()

    async def model(request: dict[str, Any]) -> dict[str, Any]:
        asked = unstamped(request["messages"][-1]["content"])
        if asked == "first question":
            await slow.wait()
        return text("answer to " + asked)

    h.fake.default = model
    proxy.arm(Fault(at=2, kind="drop", down_for=0.1, when=script(_scripts.APPEND_HISTORY)))
    first = asyncio.create_task(h.say(MANAGER, "first question"))
    await eventually(lambda: len(h.fake.requests) == 1)
    second = await h.say(MANAGER2, "second question")
    slow.set()
    said_first = await first
    assert proxy.fired.is_set()
    assert [r.text for r in second if isinstance(r, TextReply)] == ["answer to second question"]
    assert [r.text for r in said_first if isinstance(r, TextReply)] == ["answer to first question"]
    contents = [unstamped(m.get("content")) for m in await history_of(h.store, "slack:T1:C1")]
    assert contents == ["second question", "answer to second question", "first question", "answer to first question"]


def test_row_5_defaults_answer_a_killed_workers_turn_within_30_seconds() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    # Taken over after TURN_CLAIM_IDLE (checked every half of it); nothing else holds the conversation.
    assert defaults.turn_claim_idle * 1.5 < 30


async def test_row_6_a_failed_enqueue_leaves_no_mark_and_the_retry_is_accepted(
    faulty: MakeFaulty, proxy: RedisFaultProxy
) -> None:
    h = await faulty()
    queue = TurnQueue(h.redis)
    dispatcher = Dispatcher(h.core, TaskTracker(), queue)
    msg = h.incoming(MANAGER, "queued through an outage")
    await h.redis.ping()
    proxy.arm(
        Fault(
            at=1, kind="drop", down_for=OUTAGE, when=lambda name, key, _: name == "XADD" or key.startswith("pb:{turns}")
        )
    )
    with pytest.raises(StoreUnavailable):
        await dispatcher.submit(msg)
    await redis_back()
    await dispatcher.submit(msg)  # Slack's retry of the same event
    assert await h.redis.xlen(STREAM) == 1
    await dispatcher.submit(msg)  # and a further retry is a duplicate
    assert await h.redis.xlen(STREAM) == 1


def _commits_then_hangs(runs: list[str]) -> Registry:
    """The built-in tools, with a scheduling tool that commits its write and then (on its first run) does not
    answer within its timeout."""
    registry = Registry()
    for spec in builtin_tools().specs():
        if spec.name != "schedule_maintenance":
            registry.register(spec)

    @registry.tool(name="schedule_maintenance", risky=True, read_only=False, timeout=0.5)
    async def slow_schedule(args: ScheduleMaintenanceArgs, ctx: ToolContext) -> ToolResult:
        """Create a scheduled maintenance request for a property."""
        result = await schedule_maintenance(args, ctx)
        runs.append(ctx.idempotency_key or "")
        if len(runs) == 1:
            await asyncio.sleep(5)
        return result

    return registry


async def test_row_7_a_risky_tool_that_times_out_after_committing_is_not_failed_for_good(
    faulty: MakeFaulty,
) -> None:
    runs: list[str] = []
    h = await faulty(tools=_commits_then_hangs(runs))
    approval = (await ask_for_approval(h)).approval
    result = await h.decide(approval.id, MANAGER)
    assert await requests_with_key(h.db, approval.id) == 1  # it did commit
    assert result.outcome is DecisionOutcome.IN_PROGRESS and "failed" not in result.message
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.APPROVED and stored.attempts == 1
    # Its retry is scheduled, not immediate; once due, the sweeper reruns it under the same key.
    assert await h.desk.recover_stalled() == []
    [retried] = await h.desk.recover_stalled(older_than=-3600)
    assert retried.outcome is DecisionOutcome.DONE
    assert runs == [approval.id, approval.id]
    assert await requests_with_key(h.db, approval.id) == 1


async def test_row_8_a_model_failure_after_the_action_does_not_say_nothing_changed(faulty: MakeFaulty) -> None:
    h = await faulty()
    approval = (await ask_for_approval(h)).approval
    h.fake.push(ModelFault(400, body={"error": {"message": "bad", "type": "invalid_request_error"}}))
    h.fake.default = lambda request: {"role": "assistant", "content": "unreachable"}
    result = await h.decide(approval.id, MANAGER)
    assert result.outcome is DecisionOutcome.DONE
    assert await requests_with_key(h.db, approval.id) == 1
    [reply] = result.replies
    assert isinstance(reply, TextReply)
    assert "Nothing was changed" not in reply.text and reply.text.startswith("Approved and done")
    # The outcome is in the conversation all the same: the next answer can rely on it.
    told = [m for m in await history_of(h.store, "slack:T1:C1") if m.get("role") == "tool"]
    assert json.loads(told[-1]["content"])["ok"] is True


async def test_row_9_an_answer_without_content_does_not_break_the_conversation(faulty: MakeFaulty) -> None:
    h = await faulty()
    h.fake.push({"role": "assistant", "content": None}, {"role": "assistant", "content": None, "refusal": "No."})
    [empty] = await h.say(MANAGER, "something the filter drops")
    [refused] = await h.say(MANAGER, "something refused")
    h.fake.push(text("still talking"))
    [later] = await h.say(MANAGER, "and now?")
    assert isinstance(empty, TextReply) and empty.text
    assert isinstance(refused, TextReply) and refused.text == "No."
    assert isinstance(later, TextReply) and later.text == "still talking"
    assert h.fake.violations == []


async def test_row_10_a_paused_workers_heartbeat_does_not_take_back_a_reclaimed_turn(faulty: MakeFaulty) -> None:
    h = await faulty()
    finished: list[str] = []
    release = asyncio.Event()

    async def paused(msg: Incoming, attempt: int = 1) -> bool:
        await release.wait()
        finished.append("paused worker")
        return True

    async def live(msg: Incoming, attempt: int = 1) -> bool:
        finished.append("live worker")
        return True

    # The paused worker heart-beats every second; the live one takes over entries idle for 0.3 s.
    slow, fast = TurnQueue(h.redis, claim_idle=3.0), TurnQueue(h.redis, claim_idle=0.3)
    stop = asyncio.Event()
    loops = [asyncio.create_task(slow.run(paused, stop, block_ms=100))]
    await h.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await h.redis.xadd(STREAM, {"msg": h.incoming(MANAGER, "one turn").model_dump_json()})
    await eventually(lambda: slow._in_flight)
    loops.append(asyncio.create_task(fast.run(live, stop, block_ms=100)))
    await eventually(lambda: finished == ["live worker"])
    await asyncio.sleep(1.5)  # the paused worker's heartbeat runs in this window
    release.set()
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*loops)
    assert finished == ["live worker"]


async def unreadable(h: Any, conversation: str) -> str:
    """The conversation's state cannot be read: Redis answers its version key with an error (WRONGTYPE)."""
    version = keys.version(conversation)
    await h.redis.delete(version)
    await h.redis.rpush(version, "not a version")
    return version


async def test_row_11_a_queued_turn_that_cannot_read_its_conversation_is_answered_later(faulty: MakeFaulty) -> None:
    h = await faulty()
    h.fake.push(text("answered once the conversation could be read"))
    queue = TurnQueue(h.redis, claim_idle=0.6)
    responder = RecordingResponder()
    dispatcher = Dispatcher(h.core, TaskTracker(), queue)
    dispatcher.register("slack", responder)
    version = await unreadable(h, "slack:T1:C1")
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(dispatcher.run_queued, stop, block_ms=100))
    await dispatcher.submit(h.incoming(MANAGER, "are you there?"))

    async def run_again() -> bool:  # the first run found the conversation unreadable and left the turn queued
        pending: Any = await h.redis.xpending_range(STREAM, GROUP, min="-", max="+", count=1)
        return bool(pending) and int(pending[0]["times_delivered"]) >= 2

    await eventually(run_again, within=15)
    assert not responder.delivered and h.fake.requests == []
    await h.redis.delete(version)
    await eventually(lambda: responder.delivered, within=15)
    stop.set()
    await worker
    assert responder.texts() == ["answered once the conversation could be read"]
    assert await h.redis.xlen(STREAM) == 0


async def test_row_11_a_turn_that_stays_deferred_is_given_up_truthfully(faulty: MakeFaulty) -> None:
    h = await faulty()
    queue = TurnQueue(h.redis, claim_idle=0.3, max_attempts=2)
    responder = RecordingResponder()
    dispatcher = Dispatcher(h.core, TaskTracker(), queue)
    dispatcher.register("slack", responder)
    await unreadable(h, "slack:T1:C1")
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(dispatcher.run_queued, stop, block_ms=100))
    started = time.monotonic()
    await dispatcher.submit(h.incoming(MANAGER, "are you there?"))
    await eventually(lambda: responder.delivered, within=15)
    stop.set()
    await worker
    [said] = responder.texts()
    assert "send it again" in said and time.monotonic() - started > 0.3  # after a second attempt
    assert h.fake.requests == [] and await h.redis.xlen(STREAM) == 0
