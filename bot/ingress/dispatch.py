"""Between an adapter's ack and the agent: turns run in the background and replies go back through the
platform's Responder, so the HTTP side never waits for the model.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol

from bot.core import texts as replies
from bot.core.agent import Agent
from bot.errors import StoreUnavailable
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import TurnQueue
from bot.observability.logs import conversation_var, request_var
from bot.types import Approval, DecisionResult, Incoming, Platform, Reply

log = logging.getLogger(__name__)


class Responder(Protocol):
    """What an adapter offers the core to talk back on its platform. Any process can use it: everything
    it needs is in the Incoming / Approval (conversation reference, card reference)."""

    def working(self, msg: Incoming) -> contextlib.AbstractAsyncContextManager[None]:
        """Show that the agent is working (typing indicator, reaction, status) for the block's duration."""

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        """Post the agent's replies where `msg` came from (approval requests become cards)."""

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        """Replace the approval's card (from `approval.card_ref`) and post the follow-up replies; used when
        the core closes an approval without a click, e.g. on expiry."""


class Dispatcher:
    def __init__(self, agent: Agent, tasks: TaskTracker, queue: TurnQueue | None = None) -> None:
        self.agent = agent
        self.tasks = tasks
        self.queue = queue  # None: turns run in this process only (no Redis, or durability turned off)
        self.responders: dict[Platform, Responder] = {}
        self._told: dict[str, float] = {}  # delivery ids already told "temporarily unavailable"

    def register(self, platform: Platform, responder: Responder) -> None:
        self.responders[platform] = responder

    async def submit(self, msg: Incoming) -> None:
        """Accept a verified message before the platform gets its ack; the turn runs in the background.

        Raises StoreUnavailable when the message could not be accepted: the adapter then answers so that
        the platform delivers it again, and the user is told (once per delivery id) what is going on."""
        try:
            await self._accept(msg)
        except StoreUnavailable:
            self._tell_unavailable(msg)
            raise

    async def _accept(self, msg: Incoming) -> None:
        if not await self.agent.accept(msg):
            return
        if self.queue is None:
            self.tasks.spawn(self.run_turn(msg), name=f"turn:{msg.conversation.key}")
            return
        try:
            await self.queue.enqueue(msg)
        except StoreUnavailable:
            await self.agent.forget(msg.event_id)  # not queued: let the redelivery in
            raise

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
        responder = self.responders[msg.conversation.platform]
        conversation_var.set(msg.conversation.key)
        request_var.set(msg.event_id)
        try:
            async with responder.working(msg):
                answers = await self.agent.run_turn(msg)
            if answers:
                await responder.deliver(msg, answers)
        except Exception:
            # A platform API failure must not kill the process; the adapter has logged the details.
            log.exception("turn for %s could not be delivered", msg.conversation.key)

    async def sweep_expired(self) -> int:
        """Expire due approvals, finish approved runs a dead process left behind, and update their cards;
        returns how many approvals were closed."""
        results = [*await self.agent.expire_due(), *await self.agent.recover_stalled()]
        for result in results:
            if result.approval is None:
                continue
            responder = self.responders.get(result.approval.conversation.platform)
            if responder is None:
                continue
            try:
                await responder.approval_closed(result.approval, result)
            except Exception:  # one platform's failure must not stop the others' cards from closing
                log.exception("could not update the card of approval %s", result.approval.id)
        return len(results)
