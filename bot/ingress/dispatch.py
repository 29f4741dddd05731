"""Between an adapter's ack and the agent: turns run in the background and replies go back through the
platform's Responder, so the HTTP side never waits for the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core import texts as replies
from bot.core.agent import Agent, TurnDeferred
from bot.core.approvals import ApprovalDesk
from bot.core.directory import GroupSource
from bot.core.gate import NOT_ADMITTED, Directory, Gate
from bot.core.port import LiveReply, Responder
from bot.core.surfaces import Surfaces
from bot.core.team_channels import TeamChannels
from bot.errors import StoreUnavailable
from bot.ingress.courier import Courier
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import TurnQueue
from bot.observability.logs import conversation_var, request_var
from bot.store.base import Deliveries
from bot.types import (
    Approval,
    Caller,
    Decision,
    DecisionOutcome,
    DecisionResult,
    Incoming,
    Platform,
    Reply,
)
from tools.outbox import Deliver, Outbox

log = logging.getLogger(__name__)

# A stored document's content type and bytes by id, or None (lease PDFs the tools made).
Documents = Callable[[str], Awaitable[tuple[str, bytes] | None]]


async def _no_documents(document_id: str) -> tuple[str, bytes] | None:
    return None


@dataclass
class CoreParts:
    """What the composition root (`bot.app.runtime.assemble`) hands the dispatcher: the core's parts, each used
    for what it holds, none reached through another."""

    agent: Agent
    desk: ApprovalDesk
    gate: Gate
    surfaces: Surfaces
    deliveries: Deliveries
    outbox: Outbox
    documents: Documents = _no_documents
    # Deliverers of the outbox's effects beyond the team's notices, by kind (the welcome e-mail's).
    deliverers: Mapping[str, Deliver] = field(default_factory=dict)


class Dispatcher:
    """The core's port for adapters (bot.core.port.CorePort): messages in, turns in the background (or through
    the durable queue), clicks to the approval desk, replies out through each platform's Responder. Every call
    from an adapter passes the gate first (`bot.core.gate`)."""

    def __init__(
        self,
        parts: CoreParts,
        tasks: TaskTracker,
        queue: TurnQueue | None = None,
        *,
        click_ttl: float = 86400.0,
        team_channels: TeamChannels | None = None,
    ) -> None:
        self.agent = parts.agent
        self.desk = parts.desk
        self.gate = parts.gate
        self._surfaces = parts.surfaces
        self.deliveries = parts.deliveries
        self.documents = parts.documents
        self.tasks = tasks
        self.click_ttl = click_ttl
        self.queue = queue  # None: turns run in this process only (no Redis, or durability turned off)
        self.responders: dict[Platform, Responder] = {}
        self.team_channels = team_channels or TeamChannels()
        self.courier = Courier(parts.outbox, self.responders, self._surfaces, self.team_channels, parts.deliverers)
        self._told: dict[str, float] = {}  # delivery ids already told "temporarily unavailable"

    def register(
        self,
        platform: Platform,
        responder: Responder,
        directory: Directory | None = None,
        groups: GroupSource | None = None,
    ) -> None:
        self.responders[platform] = responder
        if directory is not None:
            self.gate.register(platform, directory)
        if groups is not None:
            self.gate.memberships.add_source(platform, groups)

    async def directory_changed(self, principals: list[str]) -> None:
        await self.gate.memberships.forget(principals)

    # -- what adapters call (CorePort) ---------------------------------------------------------------------
    async def answer(self, msg: Incoming) -> list[Reply]:
        if not await self.admitted(msg):
            return [replies.not_admitted()]
        return await self.agent.handle(msg)

    async def decide(self, decision: Decision, show: Callable[[Approval], LiveReply] | None = None) -> DecisionResult:
        caller = Caller(platform=decision.platform, workspace=decision.workspace, user=decision.user)
        person = await self.gate.admit(caller)
        if not person.admitted:
            return DecisionResult(outcome=DecisionOutcome.REFUSED, message=NOT_ADMITTED)
        result = await self.desk.decide(decision, show)
        shown = result.approval
        refused = result.outcome is DecisionOutcome.REFUSED
        if refused and shown is not None and not self.gate.may_see_approval(person, shown, decision.channel):
            # A refused click from outside the approval's conversation: told what an unknown id is told.
            return DecisionResult(outcome=DecisionOutcome.NOT_FOUND, message="This approval request no longer exists.")
        if result.changed:
            self.courier.kick()  # what the approved call recorded for the world outside goes out now
        return result

    async def first_delivery(self, delivery_id: str) -> bool:
        return await self.deliveries.first_delivery(delivery_id, self.click_ttl)

    async def document(self, document_id: str) -> tuple[str, bytes] | None:
        return await self.documents(document_id)

    async def attach_card(self, approval_id: str, card_ref: dict[str, Any]) -> None:
        await self.desk.attach_card(approval_id, card_ref)

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self.tasks.spawn(work, name=name)

    @property
    def surfaces(self) -> Surfaces:
        return self._surfaces

    @property
    def accepting(self) -> bool:
        return self.tasks.accepting

    async def submit(self, msg: Incoming) -> None:
        """Accept a verified message before the platform gets its ack; the turn runs in the background.

        Raises StoreUnavailable when the message could not be accepted: the adapter then answers so that
        the platform delivers it again, and the user is told (once per delivery id) what is going on."""
        try:
            await self._accept(msg)
        except StoreUnavailable:
            self._tell_unavailable(msg)
            raise

    async def admit(self, caller: Caller) -> bool:
        return (await self.gate.admit(caller)).admitted

    async def admitted(self, msg: Incoming) -> bool:
        where = msg.conversation
        return await self.admit(
            Caller(platform=where.platform, workspace=where.workspace, user=msg.user, name=msg.user_name)
        )

    async def _accept(self, msg: Incoming) -> None:
        if not await self.admitted(msg):
            return  # the gate has logged whom it refused; nothing is queued, nothing answered
        if self.queue is None:
            if await self.agent.accept(msg):
                self.tasks.spawn(self.run_turn(msg), name=f"turn:{msg.conversation.key}")
            return
        # Marked seen and queued in one step: a failure leaves neither, and the platform's retry is accepted.
        if not await self.queue.enqueue(msg, self.agent.limits.dedupe_ttl):
            self.agent.duplicate(msg)

    def _tell_unavailable(self, msg: Incoming) -> None:
        # Kept in memory: the store that would de-duplicate this notice is the thing that is down.
        now = time.monotonic()
        for event_id, at in list(self._told.items()):
            if now - at > 3600:
                del self._told[event_id]
        if msg.event_id in self._told or len(self._told) > 10_000:
            return
        self._told[msg.event_id] = now
        responder = self.responders.get(msg.conversation.platform)
        if responder is not None:
            self.tasks.spawn(self._deliver_quietly(responder, msg, [replies.unavailable_at_ingress()]), name="notice")

    async def _deliver_quietly(self, responder: Responder, msg: Incoming, out: list[Reply]) -> None:
        try:
            await responder.deliver(msg, out)
        except Exception:
            log.warning("could not tell %s that propbot is unavailable", msg.conversation.key)

    async def run_turn(self, msg: Incoming) -> None:
        """A turn run in this process, not queued: a store outage is answered in words
        and the delivery forgotten, so the platform's redelivery (or the user's resend) is accepted."""
        responder = self.responders[msg.conversation.platform]
        conversation_var.set(msg.conversation.key)
        request_var.set(msg.event_id)
        try:
            async with responder.live(msg) as live:
                await live.finish(await self.agent.run_turn(msg, live))
        except Exception:
            # A platform API failure must not kill the process; the adapter has logged the details.
            log.exception("turn for %s could not be delivered", msg.conversation.key)

    async def run_queued(self, msg: Incoming, attempt: int) -> bool:
        """A turn from the durable queue, on its `attempt`-th run. True when it is settled (its entry may be
        acknowledged): answered, answered before (a repeat only re-delivers what was not delivered), or given
        up on after the last attempt with the user told so. False leaves it queued, to run again."""
        assert self.queue is not None
        responder = self.responders[msg.conversation.platform]
        conversation_var.set(msg.conversation.key)
        request_var.set(msg.event_id)
        last = self.queue.last_attempt(attempt)
        async with responder.live(msg) as live:
            try:
                result = await self.agent.take_turn(msg, live)
            except TurnDeferred as deferred:
                if not last:
                    log.info("turn %s deferred (%s); it stays queued", msg.event_id, deferred)
                    return False
                return await self._give_up(responder, msg)
            except Exception:
                # A bug, not an outage: run it again a few times (it may pass), never forever.
                log.exception("turn %s failed (run %d)", msg.event_id, attempt)
                return await self._give_up(responder, msg) if last else False
            if result.repeated and result.delivered:
                return True
            answers = result.replies
            if result.repeated and answers and not await live.resume():
                # Its worker stopped between saving the turn and recording the delivery: the replies may or may
                # not have reached the platform, which cannot tell, so they go again, saying so.
                answers = [replies.resent(), *answers]
            try:
                await live.finish(answers)
            except Exception:
                # The replies are recorded with the turn: a later run delivers them without running it again.
                log.exception("turn %s could not be delivered", msg.event_id)
                return last
        return True  # the queue records the delivery with the acknowledgement

    async def _give_up(self, responder: Responder, msg: Incoming) -> bool:
        log.warning("turn %s could not run after the last attempt; telling the user", msg.event_id)
        note = replies.gave_up()
        try:
            await responder.deliver(msg, [note])
        except Exception:
            log.exception("could not tell %s that its message was not answered", msg.conversation.key)
        return True

    async def sweep_expired(self) -> int:
        """Expire due approvals, finish approved runs a dead process left behind, and update their cards;
        returns how many approvals were closed."""
        results = [*await self.desk.expire_due(), *await self.desk.recover_stalled()]
        for result in results:
            if result.approval is None:
                continue
            responder = self.responders.get(result.approval.conversation.platform)
            if responder is None:
                continue
            self.courier.kick()
            try:
                await responder.approval_closed(result.approval, result)
            except Exception:  # one platform's failure must not stop the others' cards from closing
                log.exception("could not update the card of approval %s", result.approval.id)
                continue  # not settled: the next sweep announces it again
            await self.desk.settle(result.approval.id)
        return len(results)
