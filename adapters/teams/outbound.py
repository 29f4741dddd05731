"""The core's way back into Teams (bot.core.port.Responder): proactive sends from a stored conversation
reference, so any process can answer, the typing indicator, and approval cards and their updates."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.stream_support import StreamSupport
from adapters.teams import cards, team
from adapters.teams.ai import FEEDBACK_ON, OpenEntity, ai_label, cited, suggested
from adapters.teams.live import STREAM_INTERVAL, Shown, TeamsLive, shown, teams_streaming
from bot.core.port import CorePort, LiveReply
from bot.types import (
    Approval,
    ApprovalRequest,
    Conversation,
    DecisionResult,
    Incoming,
    Presentation,
    Reply,
    TeamNotice,
    TextReply,
)

log = logging.getLogger(__name__)

TYPING_EVERY: Final = 3.0
NEXT_STEPS: Final = "Next steps:"
MAX_CARDS: Final = 10
ROSTER_PAGES: Final = 5  # of 200 members each: who may see an approval card's buttons is looked up here
_MESSAGE_ID: Final = re.compile(r";messageid=[^;]+", re.IGNORECASE)


class TeamsResponder:
    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        core: CorePort,
        streaming: StreamSupport | None = None,
        stream_interval: float = STREAM_INTERVAL,
        document_link: Callable[[str], str] | None = None,
    ) -> None:
        self.adapter = adapter
        self.document_link = document_link
        self.app_id = app_id
        self.core = core
        self.streaming = streaming or teams_streaming()
        self.stream_interval = stream_interval

    def live(self, msg: Incoming) -> contextlib.AbstractAsyncContextManager[LiveReply]:
        """The typing indicator while the turn runs; in a personal chat, tool progress and the answer streamed."""
        live = TeamsLive(self, msg, self.streaming, self.stream_interval)
        return shown(live, asyncio.create_task(self._keep_typing(msg.conversation)))

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        await self.post(msg.conversation, replies)

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        await self.replace_card(approval, None)
        if follow_up := self.follow_up(result):
            await self.post(approval.conversation, follow_up)

    async def notify(self, channel: str, notice: TeamNotice, delivery: str, again: bool) -> str | None:
        """Post to a team channel propbot has seen (MAINTENANCE_CHANNELS names it by conversation id). Teams has no
        way to find an earlier attempt's post, so a retry after a crash mid-post may post twice (at least once)."""
        saved = await self.core.surfaces.place(team.channel_key(channel))
        if saved is None:
            # Retried: the channel may be heard from (propbot added to the team) before the outbox gives up.
            raise LookupError(f"propbot has not been added to (or heard from) Teams channel {channel} yet")
        card = team.notice_card(notice)
        sent: list[str] = []

        async def logic(ctx: TurnContext) -> None:
            activity = self.outgoing(ctx, ActivityTypes.message, attachments=[cards.attachment(card)])
            sent.append(str(await self.send(ctx, activity) or ""))

        await self.continue_in(json.loads(saved), logic)
        return sent[0] if sent else None

    def follow_up(self, result: DecisionResult) -> list[Reply]:
        """A decision's replies, then a card per document it made: a signed link that expires, since a Teams
        message cannot carry a file from a bot outside a personal chat's file consent flow."""
        out: list[Reply] = list(result.replies)
        for document in result.documents:
            link = self.document_link(document.id) if self.document_link is not None else None
            shown = Presentation(
                title=document.title,
                link_url=link,
                link_text="Open the PDF" if link else None,
                footer=f"{document.filename}; the link works for 7 days." if link else document.filename,
            )
            out.append(
                TextReply(
                    text="" if link else "The document is ready; ask an administrator for it.", presentations=[shown]
                )
            )
        return out

    async def continue_in(self, reference: dict[str, Any], logic: Callable[[TurnContext], Awaitable[None]]) -> None:
        """Run `logic` in a proactive turn on a stored conversation reference (any process can)."""
        ref = ConversationReference().deserialize(reference)
        await self.adapter.continue_conversation(ref, logic, self.app_id)

    @staticmethod
    def outgoing(ctx: TurnContext, kind: str, reply_to: str | None = None, **fields: Any) -> Activity:
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

    async def send(self, ctx: TurnContext, activity: Activity) -> str | None:
        responses = await ctx.adapter.send_activities(ctx, [activity])
        return responses[0].id if responses and responses[0] else None

    async def _keep_typing(self, conversation: Conversation) -> None:
        async def typing(ctx: TurnContext) -> None:
            await self.send(ctx, self.outgoing(ctx, ActivityTypes.typing))

        while True:
            try:
                await self.continue_in(conversation.reference, typing)
            except Exception as exc:  # a missed typing indicator is not worth failing a turn
                log.debug("typing indicator failed: %s", type(exc).__name__)
            await asyncio.sleep(TYPING_EVERY)

    async def post(self, conversation: Conversation, replies: list[Reply]) -> None:
        async def logic(ctx: TurnContext) -> None:
            for reply in replies:
                if isinstance(reply, TextReply) and (parts := self.answer_activities(ctx, conversation, reply)):
                    for activity in parts.before:
                        await self.send(ctx, activity)
                    self.answered(conversation, reply, await self.send(ctx, parts.answer))
                    for activity in parts.after:
                        await self.send(ctx, activity)
                elif isinstance(reply, ApprovalRequest):
                    await self.post_card(ctx, conversation, reply.approval)

        if not conversation.reference:
            log.error("no conversation reference for %s; replies dropped", conversation.key)
            return
        await self.continue_in(conversation.reference, logic)

    def answered(self, conversation: Conversation, reply: TextReply, activity_id: str | None) -> None:
        """Remember the tools an answer used, for the feedback Teams sends about it (it names the message only)."""
        if activity_id and reply.tools and not reply.is_error:
            noted = self.core.surfaces.answered(activity_id, reply.tools, conversation.key)
            self.core.spawn(noted, name="teams:answered")

    def answer_activities(
        self, ctx: TurnContext, conversation: Conversation, reply: TextReply, streamed: bool = False
    ) -> Shown | None:
        """An answer as Teams shows an AI app's: labelled AI-generated, its records cited, 👍/👎 under it, and
        next steps as suggested actions for the person who asked.

        Teams shows no suggested actions on a message that carries attachments (and in a channel shows its text
        as "Invalid message"), and shows them only under the latest message. So an answer with cards and next
        steps is the cards, then the words with the next steps; streamed, the words stay where the stream began
        (above anything sent meanwhile), so the stream ends with the words and cards and a short message after it
        carries the next steps."""
        attachments = [cards.attachment(cards.presentation_card(p)) for p in reply.presentations[:MAX_CARDS]]
        if not reply.text and not attachments:
            return None
        text, claims = cited(reply.text, reply.sources) if reply.text else ("", [])
        text = f"⚠️ {text}" if reply.is_error and text else text
        user = (conversation.reference.get("user") or {}).get("id")
        offered = None if reply.is_error else suggested(reply.suggestions, user)
        parts = Shown(self._message(ctx, conversation, text, attachments, claims))
        if not reply.is_error:
            parts.answer.channel_data = dict(FEEDBACK_ON)
        if offered is None or (attachments and not text):
            return parts  # nothing to offer, or a card is the whole answer
        if not attachments:
            parts.answer.suggested_actions = offered
        elif streamed:
            steps = self.outgoing(ctx, ActivityTypes.message, conversation.thread, text=NEXT_STEPS)
            steps.suggested_actions = offered
            parts.after.append(steps)
        else:
            parts.before.append(self._message(ctx, conversation, "", attachments, []))
            parts.answer = self._message(ctx, conversation, text, [], claims)
            parts.answer.channel_data = dict(FEEDBACK_ON)
            parts.answer.suggested_actions = offered
        return parts

    def _message(
        self,
        ctx: TurnContext,
        conversation: Conversation,
        text: str,
        attachments: list[Any],
        claims: list[dict[str, Any]],
    ) -> Activity:
        return self.outgoing(
            ctx,
            ActivityTypes.message,
            conversation.thread,
            text=text or None,
            text_format="markdown" if text else None,
            attachments=attachments or None,
            attachment_layout="list" if attachments else None,
            entities=[ai_label(claims)],
        )

    async def post_card(
        self, ctx: TurnContext, conversation: Conversation, approval: Approval, ends: OpenEntity | None = None
    ) -> None:
        """The shared card (no decision buttons), refreshed by Teams into each listed person's own view. `ends`:
        the stream info entity when the card is a streamed answer's final message."""
        requester = (conversation.reference.get("user") or {}).get("id")
        user_ids = [requester] if isinstance(requester, str) and requester else []
        user_ids += [u for u in await self._approver_ids(ctx, approval) if u not in user_ids]
        zone = conversation.reference.get("timezone")
        content = cards.shared_card(approval, user_ids, zone if isinstance(zone, str) else None)
        sent = self.outgoing(ctx, ActivityTypes.message, conversation.thread, attachments=[cards.attachment(content)])
        sent.summary = f"Approval needed: {approval.title or approval.tool}"
        sent.entities = [ai_label(), *([ends] if ends is not None else [])]
        card_id = await self.send(ctx, sent)
        if card_id:
            await self.core.attach_card(approval.id, {"activity_id": card_id, "reference": conversation.reference})

    async def _approver_ids(self, ctx: TurnContext, approval: Approval) -> list[str]:
        """Teams user ids (MRIs) of the conversation's members whom the permissions file lets decide this
        approval. Best effort: without the roster only the requester's view refreshes by itself."""
        tenant = approval.conversation.workspace
        wanted = {
            p.rsplit(":", 1)[-1]
            for p in self.core.surfaces.approvers(approval)
            if p.startswith("teams:") and (p.count(":") == 1 or p.split(":")[1] == tenant)
        }
        if not wanted:
            return []
        client = ctx.turn_state.get(self.adapter.BOT_CONNECTOR_CLIENT_KEY)
        conversation_id = _MESSAGE_ID.sub("", ctx.activity.conversation.id)
        found: list[str] = []
        token: str | None = None
        try:
            for _ in range(ROSTER_PAGES):
                page = await client.conversations.get_conversation_paged_members(conversation_id, 200, token)
                found += [m.id for m in page.members or [] if m.aad_object_id in wanted and m.id]
                token = page.continuation_token
                if not token:
                    break
        except Exception as exc:  # the card is still posted; buttons come with "Show my options"
            log.warning("could not read the members of %s: %s", conversation_id, type(exc).__name__)
        return found[: cards.MAX_REFRESH_USERS]

    async def replace_card(self, approval: Approval, fallback_id: str | None, steps: list[str] | None = None) -> None:
        """The approval's card as it now stands (with `steps`: the approved run's steps, one line each)."""
        card_id = approval.card_ref.get("activity_id") or fallback_id
        reference = approval.card_ref.get("reference") or approval.conversation.reference
        if not card_id or not reference:
            log.warning("approval %s has no card to update", approval.id)
            return

        zone = approval.conversation.reference.get("timezone")

        async def logic(ctx: TurnContext) -> None:
            shown = cards.decided_card(approval, zone=zone if isinstance(zone, str) else None)
            shown["body"] += [{"type": "TextBlock", "text": line, "wrap": True} for line in steps or []]
            content = cards.attachment(shown)
            updated = self.outgoing(ctx, ActivityTypes.message, attachments=[content], entities=[ai_label()])
            updated.id = card_id
            await ctx.adapter.update_activity(ctx, updated)

        await self.continue_in(reference, logic)
