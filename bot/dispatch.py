"""Between an adapter's ack and the agent: turns run in the background and replies go back through the
platform's Responder, so the HTTP side never waits for the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from bot.agent import Agent
from bot.logs import conversation_var, request_var
from bot.models import Approval, DecisionResult, Incoming, Platform, Reply
from bot.store import StoreUnavailable
from bot.tasks import TaskTracker
from bot.turn_queue import TurnQueue

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

    def register(self, platform: Platform, responder: Responder) -> None:
        self.responders[platform] = responder

    async def submit(self, msg: Incoming) -> None:
        """Accept a verified message before the platform gets its ack; the turn runs in the background.

        Async because a durable dispatcher writes the message to a queue here; raising means the message
        was not accepted and the adapter must answer so that the platform delivers it again."""
        if not await self.agent.accept(msg):
            return
        if self.queue is None:
            self.tasks.spawn(self.run_turn(msg), name=f"turn:{msg.conversation.key}")
            return
        try:
            await self.queue.enqueue(msg)
        except StoreUnavailable:
            # Not queued: forget it was seen, so the platform's redelivery is accepted later.
            with contextlib.suppress(StoreUnavailable):
                await self.agent.store.forget_delivery(msg.event_id)
            raise

    async def run_turn(self, msg: Incoming) -> None:
        responder = self.responders[msg.conversation.platform]
        conversation_var.set(msg.conversation.key)
        request_var.set(msg.event_id)
        try:
            async with responder.working(msg):
                replies = await self.agent.run_turn(msg)
            if replies:
                await responder.deliver(msg, replies)
        except Exception:
            # A platform API failure must not kill the process; the adapter has logged the details.
            log.exception("turn for %s could not be delivered", msg.conversation.key)

    async def sweep_expired(self) -> int:
        """Expire due approvals and update their cards; returns how many were expired."""
        results = await self.agent.expire_due()
        for result in results:
            if result.approval is None:
                continue
            responder = self.responders.get(result.approval.conversation.platform)
            if responder is not None:
                with contextlib.suppress(Exception):
                    await responder.approval_closed(result.approval, result)
        return len(results)


@contextlib.asynccontextmanager
async def nothing() -> AsyncIterator[None]:
    yield
