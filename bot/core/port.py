"""The one surface adapters see of the core: what they call (`CorePort`) and what they offer back (`Responder`).

An adapter translates a platform payload into an `Incoming` or a `Decision` and hands it to the port; the
core answers through the adapter's `Responder`. Neither side reaches into the other's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol

from bot.core.directory import GroupSource
from bot.core.gate import APPROVER, MEMBER, REQUESTER, Directory
from bot.core.surfaces import Home, Marked, Surfaces
from bot.types import Approval, Caller, Decision, DecisionResult, Incoming, Platform, Progress, Reply, TeamNotice

# What adapters may name of the core besides the port itself: the gate's approval views, the directory they offer,
# and the pages the surfaces answer with.
__all__ = [
    "APPROVER",
    "MEMBER",
    "REQUESTER",
    "CorePort",
    "Directory",
    "Home",
    "LiveReply",
    "Marked",
    "Responder",
    "Surfaces",
    "Unstreamed",
    "unstreamed",
]


class LiveReply(Protocol):
    """One answer shown while it is made: the core hands over tool progress and the model's text as they
    happen, then the finished replies. Nothing here raises: a platform failure is the adapter's to log and to
    recover from (it falls back to posting the replies whole)."""

    async def progress(self, step: Progress) -> None:
        """A tool call started, finished, failed or waits for approval."""

    async def text(self, delta: str) -> None:
        """More of the answer's text, exactly as the model wrote it. The streamed text of a turn is the text of
        one of the replies `finish` gets."""

    async def finish(self, replies: list[Reply]) -> None:
        """The turn's replies: the streamed one completed (with its presentations), the others posted. May raise
        when the platform refused them: the caller keeps the turn to deliver again."""

    async def resume(self) -> bool:
        """These replies may have gone out before, from a process that stopped before recording it. True when the
        platform finds what is already there and `finish` posts only the rest (exactly once in effect); False when
        it cannot tell, and whatever went out goes again."""


class Responder(Protocol):
    """What an adapter offers the core to talk back on its platform. Any process can use it: everything
    it needs is in the Incoming / Approval (conversation reference, card reference)."""

    def live(self, msg: Incoming) -> contextlib.AbstractAsyncContextManager[LiveReply]:
        """Show the turn for `msg` while it runs (typing, status, streamed text) and take its replies. Leaving
        the block without `finish` abandons what was shown: the turn runs again later."""

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        """Post the agent's replies where `msg` came from (approval requests become cards)."""

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        """Replace the approval's card (from `approval.card_ref`) and post the follow-up replies; used when
        the core closes an approval without a click, e.g. on expiry."""

    async def notify(self, channel: str, notice: TeamNotice, delivery: str, again: bool) -> str | None:
        """Post a change to the maintenance team's channel, with its Mark in progress / Mark done buttons; the
        posted message's id. `delivery` names this post (the outbox row); `again`: an earlier attempt may have
        posted it before its process stopped, so a platform that can find the post by `delivery` looks first
        and answers with that message instead of posting a second."""


class CorePort(Protocol):
    """Every call passes the core's gate (bot.core.gate): who is asking, whether they are let in, what they may
    use, decide and see. An adapter reads the payload into a principal (`platform:<own team>:<user>`) and the
    workspace it came through, and never decides any of that itself."""

    def register(
        self,
        platform: Platform,
        responder: Responder,
        directory: Directory | None = None,
        groups: GroupSource | None = None,
    ) -> None:
        """The adapter's way back, for turns and closed approvals of its platform (from any process), and what its
        platform's directory says about people (their orgs; their groups and e-mail), for the gate."""

    async def directory_changed(self, principals: list[str]) -> None:
        """The platform says these people's groups changed: their memberships are looked up again."""

    async def submit(self, msg: Incoming) -> None:
        """Accept a verified message before the platform gets its ack; the turn runs in the background. A person
        the gate does not let in is dropped here (and logged). Raises StoreUnavailable when it could not be
        accepted (the adapter answers so it is redelivered)."""

    async def admit(self, caller: Caller) -> bool:
        """Whether the gate lets this person in at all: for an adapter's door that refuses early, before it reads
        anything else of the payload (a refused person's every other call is refused again by the core)."""

    async def answer(self, msg: Incoming) -> list[Reply]:
        """Run the turn now and return the replies (a terminal chat, which has nothing to ack)."""

    async def decide(self, decision: Decision, show: Callable[[Approval], LiveReply] | None = None) -> DecisionResult:
        """A click on an approval card. Once the click is known to change the approval, `show(approval)` is asked
        where to show the approved call's progress and the follow-up as it is written; the caller finishes
        that LiveReply with the result's replies (or abandons it)."""

    async def first_delivery(self, delivery_id: str) -> bool:
        """True the first time a click delivery is seen (platforms redeliver what they think was missed)."""

    async def document(self, document_id: str) -> tuple[str, bytes] | None:
        """A stored document's content type and bytes (a lease PDF a tool made), or None when there is none."""

    async def attach_card(self, approval_id: str, card_ref: dict[str, Any]) -> None:
        """Remember where an approval's card was posted, so any process can replace it later."""

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run adapter work in the background, tracked so shutdown waits for it."""

    @property
    def surfaces(self) -> Surfaces:
        """Suggested prompts, home pages, feedback and form requests."""

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun: new work should be refused so the platform retries elsewhere."""


class Unstreamed:
    """A LiveReply that shows nothing until the end, then delivers the replies whole: for platforms and paths
    that cannot stream."""

    def __init__(self, deliver: Callable[[list[Reply]], Awaitable[None]]) -> None:
        self._deliver = deliver

    async def progress(self, step: Progress) -> None:
        return None

    async def text(self, delta: str) -> None:
        return None

    async def finish(self, replies: list[Reply]) -> None:
        if replies:
            await self._deliver(replies)

    async def resume(self) -> bool:
        return False


@contextlib.asynccontextmanager
async def unstreamed(
    working: contextlib.AbstractAsyncContextManager[None], deliver: Callable[[list[Reply]], Awaitable[None]]
) -> AsyncIterator[LiveReply]:
    """An Unstreamed reply for the duration of a platform's working indicator."""
    async with working:
        yield Unstreamed(deliver)
