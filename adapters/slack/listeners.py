"""Slack through slack-bolt: Bolt listeners that normalise a payload and hand it to the core.

The adapter translates and decides nothing: Bolt verifies and routes, the core's port runs turns and decides
approvals. `adapters.slack.mount` wires it into the server.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.slack import blocks
from adapters.slack.door import caller
from adapters.slack.identity import click_channel, clicker_team, installation, not_a_question, strip_mention
from adapters.slack.live import SlackLive
from adapters.slack.responder import SlackResponder
from adapters.slack.surfaces import SlackSurfaces, dm_of
from adapters.slack.web import UserNames
from bot.core.port import CorePort
from bot.types import (
    Approval,
    Conversation,
    Decision,
    DecisionAction,
    Incoming,
)

log = logging.getLogger(__name__)

MAX_APPROVAL_ID = 100
_ACTIONS = {blocks.APPROVE_ACTION: DecisionAction.APPROVE, blocks.CANCEL_ACTION: DecisionAction.CANCEL}


class SlackListeners:
    """Bolt listeners: normalise a Slack payload, hand it to the core, never wait for the model."""

    def __init__(
        self,
        core: CorePort,
        responder: SlackResponder,
        names: UserNames,
        surfaces: SlackSurfaces | None = None,
        thread_memory: bool = False,
    ) -> None:
        self.core = core
        self.thread_memory = thread_memory
        self.responder = responder
        self.names = names
        self.surfaces = surfaces

    def register(self, bolt: AsyncApp) -> None:
        bolt.event("app_mention")(self.on_mention)
        bolt.event("message")(self.on_message)
        bolt.event(re.compile(".*"))(self.on_other_event)
        bolt.action(re.compile(f"^({'|'.join(_ACTIONS)})$"))(self.on_decision)
        bolt.action(re.compile(".*"))(self.on_other_action)

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        # A mention inside a DM also arrives as message.im; that copy answers it.
        if str(event.get("channel", "")).startswith("D") or event.get("channel_type") == "im":
            return
        await self._accept(
            body, event, context, thread=event.get("thread_ts") or event.get("ts"), own=self.thread_memory
        )

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("channel_type") != "im":
            return
        # Slack's own test for an assistant-panel message (Bolt's too): a person's reply in a thread of the app's
        # DM. Each such thread is a conversation of its own.
        thread = event.get("thread_ts")
        await self._accept(body, event, context, thread=thread, own=isinstance(thread, str))

    async def _accept(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext, thread: Any, own: bool
    ) -> None:
        """`own`: the thread is a conversation of its own (its own history), not a place in the channel's."""
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        bot_user = context.bot_user_id
        if (reason := not_a_question(event, bot_user)) is not None:
            # propbot's own replies come back as message.im events in every DM: worth a line only when debugging.
            own = bool(event.get("bot_id")) and event.get("bot_id") == context.bot_id
            log.log(logging.DEBUG if own else logging.INFO, "ignored a Slack %s event: %s", event.get("type"), reason)
            return
        text = strip_mention(str(event.get("text") or ""), bot_user)
        if not (isinstance(channel, str) and isinstance(ts, str) and text):
            log.info("ignored an empty or incomplete %s event", event.get("type"))
            return
        principal = caller(context).user  # let in by the door (adapters.slack.door), with their own team
        team = installation(context)
        assistant = event.get("channel_type") == "im" and isinstance(event.get("thread_ts"), str)
        recipient_team = event.get("user_team") or event.get("team") or team
        conversation = Conversation(
            platform="slack",
            workspace=team,
            channel=channel,
            thread=thread if isinstance(thread, str) else None,
            reference={"ts": ts, "user": str(user), "team": str(recipient_team), "assistant": assistant},
            thread_history=own and isinstance(thread, str),
        )
        msg = Incoming(
            conversation=conversation,
            user=principal,
            user_name=await self.names.quick(str(user)),
            text=text,
            event_id=str(body.get("event_id") or f"{channel}:{ts}"),
            timezone=await self.names.zone(str(user)),
            **sent_at(ts),
        )
        # Raising here answers Slack with a 500, so Slack delivers the event again later.
        await self.core.submit(msg)
        if assistant and self.surfaces is not None and conversation.thread:
            self.core.spawn(self.surfaces.set_title(channel, conversation.thread, text), name="slack:title")

    async def on_other_event(self, event: dict[str, Any]) -> None:
        log.info("ignored a Slack event of type %r", event.get("type"))

    async def on_decision(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        self.core.spawn(self.decide(body, action, context), name="slack:decision")

    async def on_other_action(self, ack: AsyncAck, action: dict[str, Any]) -> None:
        await ack()
        log.info("ignored a Slack action %r", action.get("action_id"))

    async def decide(self, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext) -> None:
        user: dict[str, Any] = body.get("user") or {}
        user_id = str(user.get("id") or "")
        team = installation(context)
        channel = click_channel(body)
        message: dict[str, Any] = body.get("message") or {}
        approval_id = action.get("value")
        if not (user_id and team and isinstance(approval_id, str) and 0 < len(approval_id) <= MAX_APPROVAL_ID):
            log.warning("ignored a decision click without a usable user or approval id")
            return
        clicker = clicker_team(body)
        principal = caller(context).user
        decision = Decision(
            approval_id=approval_id,
            user=principal,
            action=_ACTIONS[str(action.get("action_id"))],
            platform="slack",
            workspace=team,
            user_name=await self.names.get(user_id),
            channel=channel or None,
        )
        thread = message.get("thread_ts") if isinstance(message.get("thread_ts"), str) else None
        # A click on the App Home tab (its list of approvals) rather than on the card in a conversation.
        home_view = body.get("view") if (body.get("container") or {}).get("type") == "view" else None
        shown_in: list[SlackLive] = []

        def show(approval: Approval) -> SlackLive:
            # The approved call's progress and the model's follow-up, in the approval's conversation as they happen.
            live = self.responder.live_for(approval.conversation, user_id, str(clicker or team))
            shown_in.append(live)
            return live

        try:
            result = await self.core.decide(decision, show)
            log.info(
                "slack click %s on %s by %s: %s", decision.action.value, approval_id, decision.user, result.outcome
            )
            if home_view is not None and self.surfaces is not None:
                # The tab is redrawn for the clicker, saying what came of the click.
                tab, dm = self.surfaces.tab, dm_of(home_view)
                self.core.spawn(tab.publish(user_id, caller(context), dm, result.message), name="slack:home")
            if not result.changed or result.approval is None:
                # Refused, unknown, already decided or store down: only the clicker hears about it.
                if channel:
                    await self.responder.ephemeral(channel, user_id, result.message, thread)
                return
            ref = {"channel": channel, "ts": (body.get("container") or {}).get("message_ts") or message.get("ts")}
            await self.responder.close_card(result.approval, ref)
            if shown_in:
                await shown_in[0].finish(result.replies)
            else:
                await self.responder.post_replies(result.approval.conversation, result.replies)
            await self.responder.post_documents(result.approval.conversation, result.documents)
        finally:
            for live in shown_in:
                if not live.finished:
                    await live.abandon()


def sent_at(ts: Any) -> dict[str, float]:
    """When Slack says the message was sent (its ts is epoch seconds), for Incoming.received_at; {} if unreadable."""
    try:
        return {"received_at": float(ts)}
    except (TypeError, ValueError):
        return {}
