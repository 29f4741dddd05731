"""The six flows of the fault enumeration, each run once with one fault, then recovered and checked.

A run: a node (a propbot process) reaches Redis through the fault proxy; the flow's setup runs unfaulted; the
proxy is armed to fault the N-th command of the flow; the flow acts; Redis comes back (or, after a kill, a
fresh process takes over); the platform and the users do what they would (Slack retries an event that was not
acknowledged, a clicker told "could not confirm" clicks again, the sweeper runs); then the invariants:
- every acknowledged message answered exactly once (a copy only with the "sent again" note), or the user told
  to send it again; its exchange in the history once; nothing left in the turn queue;
- every approval executed at most once, and exactly once when a click was told it was approved or done;
  the card's last state matches the database; a click told "nothing was changed" changed nothing;
- every request the fake OpenAI received was valid (it answers invalid histories with 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.core import texts
from bot.core.history import sanitize
from bot.errors import StoreUnavailable
from bot.ingress.turn_queue import GROUP, STREAM
from bot.llm.wire import request_problems
from bot.store import Store
from bot.store.factory import OpenedStore
from bot.types import (
    Approval,
    ApprovalRequest,
    ApprovalStatus,
    Conversation,
    Decision,
    DecisionAction,
    DecisionOutcome,
    DecisionResult,
    Incoming,
)
from tests.faults.nodes import Node, Record
from tests.faults.proxy import RedisFaultProxy
from tests.support.fake_openai import FakeOpenAI, last_message, text, tool_results, unstamped
from tests.support.scripts import requests_with_key, schedule_then_report
from tools.db import Database

KINDS = ("drop", "lost", "stall", "kill")
OUTAGE = 1.0  # seconds Redis stays away after a fault: longer than redis-py's own retries


@dataclass
class World:
    proxy: RedisFaultProxy
    direct_url: str  # the suite's redis-server, not through the proxy
    fake: FakeOpenAI
    db: Database


@dataclass
class Run:
    """One flow run: what it acted on and what it was told."""

    world: World
    node: Node
    record: Record = field(default_factory=Record)
    msg: Incoming | None = None
    also: list[Incoming] = field(default_factory=list)  # more messages of the same conversation, at the same time
    approval: Approval | None = None
    acked: bool = True
    results: list[DecisionResult] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    direct: OpenedStore | None = None  # the store as the checks read it: straight to Redis

    @property
    def store(self) -> Store:
        assert self.direct is not None
        return self.direct.store


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The model: a tool outcome is reported, a user message is answered by echoing it."""
    last = last_message(request)
    if last["role"] == "user" and "schedule" in str(last["content"]):
        return schedule_then_report(request)
    if last["role"] == "tool":
        return text("outcome: " + json.dumps(tool_results(request)[-1]))
    return text(f"answer to {unstamped(last['content'])}")


def incoming(platform: str) -> Incoming:
    # A conversation per run: runs share one Redis, and one run's history must not crowd out the next's.
    if platform == "teams":
        conversation = Conversation(platform="teams", workspace="tenant-1", channel=f"a:1-{uuid.uuid4().hex[:12]}")
        user = "teams:tenant-1:aad-manager"
    else:
        conversation = Conversation(platform="slack", workspace="T1", channel=f"C{uuid.uuid4().hex[:10].upper()}")
        user = "slack:T1:UMANAGER"
    return Incoming(
        conversation=conversation, user=user, text=f"question {uuid.uuid4().hex[:8]}", event_id=uuid.uuid4().hex
    )


async def until(check: Callable[[], Awaitable[bool]], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


# -- the flows: setup (unfaulted), act (faulted), recover (what platforms, users and the sweeper do) -----------
class Flow:
    name = ""
    node_options: dict[str, Any] = {}
    worker_at_start = True
    # The faulted node gets a database of its own (the same file), whose write boundaries can be faulted too.
    own_database = False

    async def setup(self, run: Run) -> None:
        return None

    async def act(self, run: Run) -> None:
        raise NotImplementedError

    async def settled(self, run: Run) -> bool:
        """Whether the flow's visible work is over (the act phase waits for this, up to a few seconds)."""
        return True

    async def recover(self, run: Run, fresh: Node) -> None:
        raise NotImplementedError

    async def check(self, run: Run) -> None:
        raise NotImplementedError


class MessageFlow(Flow):
    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.name = f"{platform} message"

    async def act(self, run: Run) -> None:
        run.msg = incoming(self.platform)
        # Until submit returns, the platform has no 200: an error status, or a process killed before it could
        # answer, both make the platform deliver the event again.
        run.acked = False
        with contextlib.suppress(StoreUnavailable):
            await run.node.dispatcher.submit(run.msg)
            run.acked = True

    async def settled(self, run: Run) -> bool:
        assert run.msg is not None
        return bool(run.record.texts_for(run.msg.event_id)) or not run.acked or run.node.dead

    async def recover(self, run: Run, fresh: Node) -> None:
        assert run.msg is not None
        if not run.acked:
            await fresh.dispatcher.submit(run.msg)  # the platform's retry of the same event
        await queue_drained(run, fresh)

    async def check(self, run: Run) -> None:
        assert run.msg is not None
        await check_message(run, run.msg)
        await check_queue_empty(run)


class ReclaimFlow(MessageFlow):
    """A turn taken by a worker that died before running it is taken over by a live one."""

    worker_at_start = False

    def __init__(self) -> None:
        super().__init__("slack")
        self.name = "reclaim"

    async def setup(self, run: Run) -> None:
        run.msg = incoming("slack")
        assert await run.node.queue.enqueue(run.msg, 3600)
        # A worker that read it and died: the entry is pending under a consumer that never comes back.
        redis = run.node.runtime.redis
        assert redis is not None
        await redis.xreadgroup(GROUP, "dead-worker", {STREAM: ">"}, count=1)

    async def act(self, run: Run) -> None:
        run.node.start_worker()

    async def recover(self, run: Run, fresh: Node) -> None:
        await queue_drained(run, fresh)


class DecisionFlow(Flow):
    def __init__(self, action: DecisionAction) -> None:
        self.action = action
        self.name = "approve click" if action is DecisionAction.APPROVE else "cancel click"

    async def setup(self, run: Run) -> None:
        run.approval = await request_approval(run)

    async def act(self, run: Run) -> None:
        assert run.approval is not None
        result = await run.node.dispatcher.decide(decision(run.approval, self.action))
        run.results.append(result)
        await show(run, result)
        await check_told_truth(run, result)

    async def recover(self, run: Run, fresh: Node) -> None:
        assert run.approval is not None
        if not run.results or run.results[-1].outcome is DecisionOutcome.UNAVAILABLE:
            result = await fresh.dispatcher.decide(decision(run.approval, self.action))  # the user clicks again
            run.results.append(result)
            await show(run, result)
        await sweep(run, fresh)

    async def check(self, run: Run) -> None:
        await check_approval(run, self.action)


class ExpiryFlow(Flow):
    name = "expiry sweep"
    node_options = {"approval_ttl": 0.3}

    async def setup(self, run: Run) -> None:
        run.approval = await request_approval(run)
        await asyncio.sleep(0.35)

    async def act(self, run: Run) -> None:
        await run.node.dispatcher.sweep_expired()

    async def recover(self, run: Run, fresh: Node) -> None:
        await sweep(run, fresh)

    async def check(self, run: Run) -> None:
        assert run.approval is not None
        stored = await approval_now(run)
        if stored.status is not ApprovalStatus.EXPIRED:
            run.violations.append(f"approval {stored.status.value} after the sweep, not expired")
        if await requests_with_key(run.world.db, run.approval.id):
            run.violations.append("an expired approval executed")
        await check_card(run, stored)
        await check_history(run, run.approval.conversation.key)


FLOWS: list[Flow] = [
    MessageFlow("slack"),
    MessageFlow("teams"),
    DecisionFlow(DecisionAction.APPROVE),
    DecisionFlow(DecisionAction.CANCEL),
    ExpiryFlow(),
    ReclaimFlow(),
]


# -- steps shared by the flows -------------------------------------------------------------------------------
async def request_approval(run: Run) -> Approval:
    msg = incoming("slack").model_copy(
        update={"user": "slack:T1:USTAFF", "text": "Please schedule a plumber at P-1001, the sink leaks"}
    )
    replies = await run.node.runtime.agent.handle(msg)
    [request] = [r for r in replies if isinstance(r, ApprovalRequest)]
    responder = run.node.dispatcher.responders["slack"]
    await responder.deliver(msg, replies)
    return request.approval


def decision(approval: Approval, action: DecisionAction) -> Decision:
    return Decision(approval_id=approval.id, user="slack:T1:UMANAGER", action=action, platform="slack", workspace="T1")


async def show(run: Run, result: DecisionResult) -> None:
    """What the Slack adapter does with a click's result: a changed approval's card is replaced."""
    if result.changed and result.approval is not None:
        run.record.cards[result.approval.id] = result.approval.status


async def sweep(run: Run, node: Node) -> None:
    """The sweeper, with every retry due now (it would be, a few minutes later)."""
    for _ in range(3):
        results = await node.runtime.desk.recover_stalled(older_than=-3600)
        results += await node.runtime.desk.expire_due(announce_after=0)
        for result in results:
            await show(run, result)
            if result.approval is not None:
                await node.runtime.desk.settle(result.approval.id)
        if not results:
            return


async def queue_drained(run: Run, node: Node) -> None:
    redis = node.runtime.redis
    assert redis is not None

    async def empty() -> bool:
        pending: Any = await redis.xpending(STREAM, GROUP)
        return int(pending["pending"]) == 0 and int(await redis.xlen(STREAM)) == 0

    await until(empty, within=20)


async def approval_now(run: Run) -> Approval:
    assert run.approval is not None
    stored = await run.store.get_approval(run.approval.id)
    assert stored is not None
    return stored


# -- invariants ----------------------------------------------------------------------------------------------
async def settled_history(run: Run, conversation: str) -> list[dict[str, Any]]:
    """The history as the next turn would read it."""
    return (await run.store.load_history(conversation)).history


async def check_message(run: Run, msg: Incoming) -> None:
    said = run.record.texts_for(msg.event_id)
    answers = said.count(f"answer to {msg.text}")
    copies = said.count(texts.resent().text)
    gave_up = [t for t in said if "send it again" in t]
    if answers == 0 and not gave_up:
        run.violations.append("the message was never answered, and the user was not told")
    elif answers > 1 + copies:
        run.violations.append(f"answered {answers} times ({copies} marked as copies)")
    stored = await settled_history(run, msg.conversation.key)
    asked = [m for m in stored if m.get("role") == "user" and unstamped(m.get("content")) == msg.text]
    if answers and len(asked) != 1:
        run.violations.append(f"the message is {len(asked)} times in the history")
    await check_history(run, msg.conversation.key)


async def check_queue_empty(run: Run) -> None:
    assert run.direct is not None and run.direct.redis is not None
    pending: Any = await run.direct.redis.xpending(STREAM, GROUP)
    if int(pending["pending"]):
        run.violations.append(f"{pending['pending']} turn(s) left pending in the queue")


async def check_told_truth(run: Run, result: DecisionResult) -> None:
    """A click told "nothing was changed" must have changed nothing, at that moment."""
    if "nothing was changed" not in result.message or run.approval is None:
        return
    stored = await run.store.get_approval(run.approval.id)
    if stored is not None and stored.status is not ApprovalStatus.PENDING:
        run.violations.append(f"told 'nothing was changed' while the approval was {stored.status.value}")


async def check_approval(run: Run, action: DecisionAction) -> None:
    assert run.approval is not None
    stored = await approval_now(run)
    executed = await requests_with_key(run.world.db, run.approval.id)
    if executed > 1:
        run.violations.append(f"executed {executed} times")
    told_approved = any(r.outcome in (DecisionOutcome.DONE, DecisionOutcome.IN_PROGRESS) for r in run.results)
    if action is DecisionAction.APPROVE:
        if (told_approved or stored.status is ApprovalStatus.DONE) and executed != 1:
            run.violations.append(f"told approved (or done) but executed {executed} times")
        if stored.status is not ApprovalStatus.DONE:
            run.violations.append(f"approval ended {stored.status.value}, not done, after recovery")
    else:
        if executed:
            run.violations.append("a cancelled approval executed")
        if stored.status is not ApprovalStatus.CANCELLED:
            run.violations.append(f"approval ended {stored.status.value}, not cancelled, after recovery")
    await check_card(run, stored)
    await check_history(run, run.approval.conversation.key)


async def check_card(run: Run, stored: Approval) -> None:
    shown = run.record.cards.get(stored.id)
    if shown is not stored.status:
        run.violations.append(f"card shows {shown} but the approval is {stored.status.value}")


async def check_history(run: Run, conversation: str) -> None:
    if run.world.fake.violations:
        run.violations.append(f"invalid model request: {run.world.fake.violations[0]}")
    stored = await settled_history(run, conversation)
    if problems := request_problems(sanitize(stored)):
        run.violations.append(f"stored history invalid: {problems[0]}")
    calls = [c["id"] for m in stored for c in m.get("tool_calls") or []]
    if len(calls) != len(set(calls)):
        run.violations.append("a tool call is in the history twice")
