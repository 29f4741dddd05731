"""The core's way back into Slack (bot.core.port.Responder): the working reaction, replies, cards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.delivery import AnswerTags, part
from adapters.slack.format import escape
from adapters.slack.live import STREAM_INTERVAL, SlackLive, Target, shown, slack_streaming
from adapters.slack.team import post_notice
from adapters.slack.web import call
from adapters.stream_support import StreamSupport
from bot.core.port import CorePort, LiveReply
from bot.types import (
    Approval,
    ApprovalRequest,
    Conversation,
    DecisionResult,
    DocumentLink,
    Incoming,
    Reply,
    TeamNotice,
    TextReply,
)

log = logging.getLogger(__name__)

WORKING_REACTION = "hourglass_flowing_sand"


class SlackResponder:
    """The core's way back into Slack (bot.ingress.dispatch.Responder)."""

    def __init__(
        self,
        client: AsyncWebClient,
        core: CorePort,
        streaming: StreamSupport | None = None,
        stream_interval: float = STREAM_INTERVAL,
    ) -> None:
        self.client = client
        self.core = core  # its spawn() is tracked: shutdown drains the reaction calls with the turns
        self.streaming = streaming or slack_streaming()
        self.stream_interval = stream_interval

    def live(self, msg: Incoming) -> contextlib.AbstractAsyncContextManager[LiveReply]:
        return self._live(msg)

    @contextlib.asynccontextmanager
    async def _live(self, msg: Incoming) -> AsyncIterator[SlackLive]:
        """The turn shown while it runs: a reaction on the question (or the panel's status) and the answer
        streamed into the thread."""
        conversation, ref = msg.conversation, msg.conversation.reference
        target = Target(
            team=conversation.workspace,
            channel=conversation.channel,
            thread=conversation.thread,
            user=str(ref.get("user") or ""),
            user_team=str(ref.get("team") or conversation.workspace),
            assistant=bool(ref.get("assistant")),
        )
        live = self.open_live(target, conversation, AnswerTags(msg.event_id))
        if target.assistant:
            live.begin_status("is working on it…")
            async with shown(live):
                yield live
            return
        async with self._reacting(msg), shown(live):
            yield live

    def live_for(self, conversation: Conversation, user: str, user_team: str) -> SlackLive:
        """An answer shown in `conversation` for this Slack user (a decision's follow-up)."""
        target = Target(
            team=conversation.workspace,
            channel=conversation.channel,
            thread=conversation.thread,
            user=user,
            user_team=user_team,
            assistant=bool(conversation.reference.get("assistant")),
        )
        return self.open_live(target, conversation)

    def open_live(self, target: Target, conversation: Conversation, tags: AnswerTags | None = None) -> SlackLive:
        return SlackLive(self.client, self.streaming, target, self, conversation, self.stream_interval, tags)

    @contextlib.asynccontextmanager
    async def _reacting(self, msg: Incoming) -> AsyncIterator[None]:
        """A reaction on the user's message while the turn runs. Both reaction calls run beside the turn,
        never in front of it: against real Slack each costs 50-200 ms the user would otherwise wait."""
        channel, ts = msg.conversation.channel, msg.conversation.reference.get("ts")
        if not ts:
            yield
            return
        added = self.core.spawn(self._react("reactions.add", channel, ts), name="slack:react")
        try:
            yield
        finally:
            self.core.spawn(self._unreact(added, channel, ts), name="slack:unreact")

    async def _unreact(self, added: asyncio.Task[Any], channel: str, ts: Any) -> None:
        if await added is not None:
            await self._react("reactions.remove", channel, ts)

    async def _react(self, method: str, channel: str, ts: Any) -> dict[str, Any] | None:
        return await call(self.client, method, channel=channel, timestamp=ts, name=WORKING_REACTION)

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        await self.post_replies(msg.conversation, replies)

    async def post_replies(
        self, conversation: Conversation, replies: list[Reply], main: TextReply | None = None
    ) -> None:
        """Post replies whole; `main` is the turn's answer, which carries the feedback buttons."""
        await self.post_answer(conversation, list(enumerate(replies)), main, None)

    async def post_answer(
        self,
        conversation: Conversation,
        numbered: list[tuple[int, Reply]],
        main: TextReply | None,
        tags: AnswerTags | None,
    ) -> None:
        """Post a turn's replies whole, each message tagged with its part when `tags` are given; a part an earlier
        attempt posted (found on a repeat) is not posted again."""
        for index, reply in numbered:
            if isinstance(reply, TextReply):
                messages = blocks.answer_messages(reply) if reply is main else blocks.reply_messages(reply)
                await self.post_messages(conversation, messages, tags, index)
            elif isinstance(reply, ApprovalRequest):
                await self.post_card(conversation, reply.approval, tags, part(index, 0))

    async def post_messages(
        self,
        conversation: Conversation,
        messages: list[blocks.Message],
        tags: AnswerTags | None = None,
        reply: int = 0,
        first: int = 0,
    ) -> None:
        for number, message in enumerate(messages, first):
            at = part(reply, number)
            if tags is not None and at in tags.posted:
                continue
            await self.post(conversation, {**message.payload(), **_tagged(tags, at)})

    async def post(self, conversation: Conversation, payload: dict[str, Any]) -> dict[str, Any] | None:
        thread = {"thread_ts": conversation.thread} if conversation.thread else {}
        return await call(self.client, "chat.postMessage", channel=conversation.channel, **thread, **payload)

    async def post_card(
        self, conversation: Conversation, approval: Approval, tags: AnswerTags | None = None, at: str = ""
    ) -> None:
        if tags is not None and (ts := tags.posted.get(at)) is not None:
            # Posted by an earlier attempt, which may have stopped before recording where: recorded now.
            await self.core.attach_card(approval.id, {"channel": conversation.channel, "ts": ts})
            return
        posted = await self.post(conversation, {**blocks.approval_card(approval), **_tagged(tags, at)})
        if posted is None:
            log.error("approval %s has no card: posting it failed; it will expire unanswered", approval.id)
            return
        await self.core.attach_card(approval.id, {"channel": posted.get("channel"), "ts": posted.get("ts")})

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        """Replace the card, then post the follow-up in its thread."""
        await self.close_card(approval, approval.card_ref)
        await self.post_replies(approval.conversation, result.replies)
        await self.post_documents(approval.conversation, result.documents)

    async def notify(self, channel: str, notice: TeamNotice, delivery: str, again: bool) -> str | None:
        return await post_notice(self.client, channel, notice, delivery, again)

    async def post_documents(self, conversation: Conversation, documents: list[DocumentLink]) -> None:
        """Each document as a file in the thread, with Slack's current upload API (files.getUploadURLExternal,
        the bytes to its URL, files.completeUploadExternal); one that cannot be uploaded is named in words."""
        for document in documents:
            found = await self.core.document(document.id)
            try:
                if found is None:
                    raise LookupError(document.id)
                await self.client.files_upload_v2(
                    channel=conversation.channel,
                    thread_ts=conversation.thread,
                    file=found[1],
                    filename=document.filename,
                    title=document.title,
                )
            except (SlackApiError, SlackRequestError, LookupError, aiohttp.ClientError) as exc:
                log.warning("could not upload %s to Slack (%s)", document.filename, type(exc).__name__)
                note = f"{document.title} ({document.filename}) is ready, but could not be uploaded here."
                await self.post(conversation, {"text": escape(note)})

    async def close_card(self, approval: Approval, ref: dict[str, Any]) -> None:
        """Replace the card (no buttons: who, when, outcome)."""
        where = approval.card_ref if approval.card_ref.get("ts") else ref
        if where.get("channel") and where.get("ts"):
            card = blocks.closed_card(approval)
            await call(self.client, "chat.update", channel=where["channel"], ts=where["ts"], **card)
        else:
            log.warning("approval %s was closed but its card is unknown; only the answer is posted", approval.id)

    async def ephemeral(self, channel: str, user: str, text: str, thread: str | None) -> None:
        extra = {"thread_ts": thread} if thread else {}
        await call(self.client, "chat.postEphemeral", channel=channel, user=user, text=escape(text), **extra)


def _tagged(tags: AnswerTags | None, at: str) -> dict[str, Any]:
    return {"metadata": tags.metadata(at)} if tags is not None else {}
