"""The core's way back into Teams (bot.core.port.Responder): proactive sends from a stored conversation
reference, so any process can answer, the typing indicator, and approval cards and their updates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.teams import cards
from bot.core.port import CorePort, LiveReply, unstreamed
from bot.types import (
    Approval,
    ApprovalRequest,
    Conversation,
    DecisionResult,
    Incoming,
    Reply,
    TextReply,
)

log = logging.getLogger(__name__)

TYPING_EVERY: Final = 3.0
MAX_CARDS: Final = 10


class TeamsResponder:
    def __init__(self, adapter: CloudAdapter, app_id: str, core: CorePort) -> None:
        self.adapter = adapter
        self.app_id = app_id
        self.core = core

    def live(self, msg: Incoming) -> contextlib.AbstractAsyncContextManager[LiveReply]:
        """The typing indicator while the turn runs, then the replies whole."""
        return unstreamed(self._typing(msg), lambda replies: self.deliver(msg, replies))

    @contextlib.asynccontextmanager
    async def _typing(self, msg: Incoming) -> AsyncIterator[None]:
        typing = asyncio.create_task(self._keep_typing(msg.conversation))
        try:
            yield
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        await self.post(msg.conversation, replies)

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        await self.replace_card(approval, None)
        if result.replies:
            await self.post(approval.conversation, result.replies)

    async def _continue(self, reference: dict[str, Any], logic: Callable[[TurnContext], Awaitable[None]]) -> None:
        """Run `logic` in a proactive turn on a stored conversation reference (any process can)."""
        ref = ConversationReference().deserialize(reference)
        await self.adapter.continue_conversation(ref, logic, self.app_id)

    @staticmethod
    def _outgoing(ctx: TurnContext, kind: str, reply_to: str | None = None, **fields: Any) -> Activity:
        # Sent through the adapter rather than ctx.send_activity, which would make every proactive
        # message a reply to the continuation event's made-up id.
        incoming: Activity = ctx.activity
        return Activity(
            type=kind,
            channel_id=incoming.channel_id,
            service_url=incoming.service_url,
            conversation=incoming.conversation,
            from_property=incoming.recipient,
            recipient=incoming.from_property,
            reply_to_id=reply_to,
            **fields,
        )

    async def _send(self, ctx: TurnContext, activity: Activity) -> str | None:
        responses = await ctx.adapter.send_activities(ctx, [activity])
        return responses[0].id if responses and responses[0] else None

    async def _keep_typing(self, conversation: Conversation) -> None:
        async def typing(ctx: TurnContext) -> None:
            await self._send(ctx, self._outgoing(ctx, ActivityTypes.typing))

        while True:
            try:
                await self._continue(conversation.reference, typing)
            except Exception as exc:  # a missed typing indicator is not worth failing a turn
                log.debug("typing indicator failed: %s", type(exc).__name__)
            await asyncio.sleep(TYPING_EVERY)

    async def post(self, conversation: Conversation, replies: list[Reply]) -> None:
        async def logic(ctx: TurnContext) -> None:
            for reply in replies:
                if isinstance(reply, TextReply):
                    activity = self._text_activity(ctx, conversation, reply)
                    if activity is not None:
                        await self._send(ctx, activity)
                elif isinstance(reply, ApprovalRequest):
                    approval = reply.approval
                    card = cards.attachment(cards.approval_card(approval))
                    summary = f"Approval needed: {approval.title or approval.tool}"
                    sent = self._outgoing(ctx, ActivityTypes.message, conversation.thread, attachments=[card])
                    sent.summary = summary
                    card_id = await self._send(ctx, sent)
                    if card_id:
                        ref = {"activity_id": card_id, "reference": conversation.reference}
                        await self.core.attach_card(approval.id, ref)

        if not conversation.reference:
            log.error("no conversation reference for %s; replies dropped", conversation.key)
            return
        await self._continue(conversation.reference, logic)

    def _text_activity(self, ctx: TurnContext, conversation: Conversation, reply: TextReply) -> Activity | None:
        attachments = [cards.attachment(cards.presentation_card(p)) for p in reply.presentations[:MAX_CARDS]]
        if not reply.text and not attachments:
            return None
        text = f"⚠️ {reply.text}" if reply.is_error and reply.text else reply.text
        return self._outgoing(
            ctx,
            ActivityTypes.message,
            conversation.thread,
            text=text or None,
            text_format="markdown",
            attachments=attachments or None,
            attachment_layout="list" if attachments else None,
        )

    async def replace_card(self, approval: Approval, fallback_id: str | None) -> None:
        card_id = approval.card_ref.get("activity_id") or fallback_id
        reference = approval.card_ref.get("reference") or approval.conversation.reference
        if not card_id or not reference:
            log.warning("approval %s has no card to update", approval.id)
            return

        async def logic(ctx: TurnContext) -> None:
            content = cards.attachment(cards.decided_card(approval))
            updated = self._outgoing(ctx, ActivityTypes.message, attachments=[content])
            updated.id = card_id
            await ctx.adapter.update_activity(ctx, updated)

        await self._continue(reference, logic)
