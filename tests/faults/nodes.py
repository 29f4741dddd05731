"""One propbot process inside a fault test, and what every process of a test delivered.

A node is the core wired by the composition root (`start_process`) behind the same port the adapters call
(`Dispatcher`), with its own turn-queue worker and a responder that does what the platform responders do:
record what would be posted, and attach each approval card's reference once "posted". A node can be killed:
every task it runs is cancelled at once, and as its Redis connections go through the fault proxy, which is
refusing connections at that moment, nothing it would still send reaches Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from bot.app.runtime import Runtime
from bot.core.permissions import parse_permissions
from bot.core.port import LiveReply, unstreamed
from bot.core.team_channels import TeamChannels
from bot.ingress.dispatch import Dispatcher
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import TurnQueue
from bot.types import Approval, ApprovalRequest, ApprovalStatus, DecisionResult, Incoming, Reply, TeamNotice, TextReply
from tests.faults.conftest import warm_scripts
from tests.support.fake_openai import FakeOpenAI
from tests.support.harness import PERMISSIONS_YAML, start_process, stop_process, test_settings
from tools.db import Database
from tools.documents.mail_outbox import email_deliverer
from tools.documents.notify import DeliveryReceipt, OutboundMessage
from tools.outbox import EMAIL

_card_ts = itertools.count(1)

# Quick timings, so each run takes seconds.
TIMINGS: dict[str, Any] = {"openai_timeout": 3.0, "openai_deadline": 5.0}
CLAIM_IDLE = 0.5


@dataclass
class Posted:
    """What one delivery put in front of users."""

    event_id: str
    texts: list[str]
    approvals: list[str]


@dataclass
class Record:
    """Everything the nodes of one run delivered, and the last state each approval card was shown in."""

    posted: list[Posted] = field(default_factory=list)
    cards: dict[str, ApprovalStatus] = field(default_factory=dict)
    noticed: list[str] = field(default_factory=list)  # the outbox delivery id of every notice posted
    mails: list[str] = field(default_factory=list)  # the idempotency key of every e-mail a server took

    def texts_for(self, event_id: str) -> list[str]:
        return [t for p in self.posted if p.event_id == event_id for t in p.texts]


class RecordingResponder:
    def __init__(self, node: Node) -> None:
        self.node = node

    def live(self, msg: Incoming) -> contextlib.AbstractAsyncContextManager[LiveReply]:
        return unstreamed(contextlib.nullcontext(), lambda replies: self.deliver(msg, replies))

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        texts = [r.text for r in replies if isinstance(r, TextReply)]
        approvals = [r.approval for r in replies if isinstance(r, ApprovalRequest)]
        self.node.record.posted.append(Posted(msg.event_id, texts, [a.id for a in approvals]))
        for approval in approvals:
            self.node.record.cards[approval.id] = approval.status
            ref = {"channel": msg.conversation.channel, "ts": f"1700000000.{next(_card_ts):06d}"}
            await self.node.dispatcher.attach_card(approval.id, ref)

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        self.node.record.cards[approval.id] = approval.status

    async def notify(self, channel: str, notice: TeamNotice, delivery: str, again: bool) -> str | None:
        """As Slack's responder: a retry finds the post an earlier attempt made (its metadata names `delivery`)."""
        if again and delivery in self.node.record.noticed:
            return "found"
        self.node.record.noticed.append(delivery)
        return f"posted-{len(self.node.record.noticed)}"


class RecordingMail:
    """A mail server that takes every message (a Notifier): what it took is in the record."""

    def __init__(self, record: Record) -> None:
        self.record = record

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.record.mails.append(message.idempotency_key)
        return DeliveryReceipt(message.idempotency_key, f"<{message.idempotency_key}@test>", True)


class Node:
    def __init__(self, url: str, fake: FakeOpenAI, db: Database, record: Record, **overrides: Any) -> None:
        # The Teams flow's tenant is one this deployment serves, as a Teams deployment's settings say.
        served = {"teams_allowed_tenants": "tenant-1"}
        settings = test_settings(fake, redis_url=url, **{**TIMINGS, **served, **overrides})
        self.runtime: Runtime = start_process(settings, parse_permissions(PERMISSIONS_YAML), db)
        # A losing click waits this long for the winner's run; after a fault that run may be the sweeper's.
        self.runtime.desk.settle_wait = 2.0
        self.record = record
        assert self.runtime.redis is not None
        self.queue = TurnQueue(self.runtime.redis, claim_idle=CLAIM_IDLE)
        self.tracker = TaskTracker()
        mail = RecordingMail(record)
        self.runtime.desk.runner.services["notifier"] = mail
        parts = replace(self.runtime.core, deliverers={**self.runtime.core.deliverers, EMAIL: email_deliverer(mail)})
        channels = TeamChannels.parse(settings.maintenance_channels)
        self.dispatcher = Dispatcher(parts, self.tracker, self.queue, team_channels=channels)
        responder = RecordingResponder(self)
        self.dispatcher.register("slack", responder)
        self.dispatcher.register("teams", responder)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker: asyncio.Task[None] | None = None
        self.dead = False

    async def start(self, *, worker: bool = True) -> Node:
        assert self.runtime.redis is not None
        await warm_scripts(self.runtime.redis)
        if worker:
            self.start_worker()
        return self

    def start_worker(self) -> None:
        self._worker = self.spawn(self.queue.run(self.dispatcher.run_queued, self._stop, block_ms=50))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def kill(self) -> None:
        """SIGKILL, as far as one process can do it to a part of itself: everything it runs stops now."""
        self.dead = True
        for task in [*self._tasks, *self.queue._in_flight.values(), *self.tracker._tasks]:
            task.cancel()

    async def close(self) -> None:
        self._stop.set()
        if self.dead:
            self.kill()  # anything started since
        pending = [*self._tasks, *self.queue._in_flight.values(), *self.tracker._tasks]
        if pending:
            _, still = await asyncio.wait(pending, timeout=5.0)
            for task in still:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await stop_process(self.runtime)
