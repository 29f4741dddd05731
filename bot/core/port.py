"""The one surface adapters see of the core: what they call (`CorePort`) and what they offer back (`Responder`).

An adapter translates a platform payload into an `Incoming` or a `Decision` and hands it to the port; the
core answers through the adapter's `Responder`. Neither side reaches into the other's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol

from bot.types import Approval, Decision, DecisionResult, Incoming, Platform, Reply


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


class CorePort(Protocol):
    def register(self, platform: Platform, responder: Responder) -> None:
        """The adapter's way back, for turns and closed approvals of its platform (from any process)."""

    async def submit(self, msg: Incoming) -> None:
        """Accept a verified message before the platform gets its ack; the turn runs in the background.
        Raises StoreUnavailable when it could not be accepted (the adapter answers so it is redelivered)."""

    async def answer(self, msg: Incoming) -> list[Reply]:
        """Run the turn now and return the replies (a terminal chat, which has nothing to ack)."""

    async def decide(self, decision: Decision) -> DecisionResult:
        """A click on an approval card."""

    async def first_delivery(self, delivery_id: str) -> bool:
        """True the first time a click delivery is seen (platforms redeliver what they think was missed)."""

    async def attach_card(self, approval_id: str, card_ref: dict[str, Any]) -> None:
        """Remember where an approval's card was posted, so any process can replace it later."""

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run adapter work in the background, tracked so shutdown waits for it."""

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun: new work should be refused so the platform retries elsewhere."""
