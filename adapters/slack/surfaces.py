"""Slack's AI-app surfaces around the conversation: the assistant panel (suggested prompts, title), feedback
buttons, the App Home tab and the maintenance request modal. Like the rest of the adapter, these only translate:
what to suggest, list, record or request is the core's (`CorePort.surfaces`)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.slack import blocks, home
from adapters.slack.door import caller
from adapters.slack.identity import click_channel, installation
from adapters.slack.responder import SlackResponder
from adapters.slack.web import UserNames, call
from bot.core.port import CorePort
from bot.types import ApprovalRequest, Caller, Conversation, Feedback, TextReply

log = logging.getLogger(__name__)

TITLE_LIMIT = 80


class HomeTab:
    """Publishes a person's App Home view (views.publish) from what the core says waits on them."""

    def __init__(self, core: CorePort, client: Any) -> None:
        self.core = core
        self.client = client

    async def publish(self, user_id: str, asking: Caller, dm: str = "", notice: str = "") -> None:
        page = await self.core.surfaces.home(asking)
        view = home.home_view(page, notice=notice, dm_channel=dm)
        await call(self.client, "views.publish", user_id=user_id, view=view)


def dm_of(view: dict[str, Any] | None) -> str:
    """The DM channel a published home view was made for (kept in its request button)."""
    for block in (view or {}).get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == home.NEW_REQUEST_ACTION:
                value = str(element.get("value") or "")
                return "" if value == "-" else value
    return ""


class SlackSurfaces:
    def __init__(self, core: CorePort, responder: SlackResponder, names: UserNames, tab: HomeTab) -> None:
        self.core = core
        self.responder = responder
        self.client = responder.client
        self.names = names
        self.tab = tab

    def register(self, bolt: AsyncApp) -> None:
        """Before the catch-all listeners: Bolt runs the first listener that matches."""
        bolt.event("assistant_thread_started")(self.on_thread_started)
        bolt.event("assistant_thread_context_changed")(self.on_context_changed)
        bolt.event("app_home_opened")(self.on_home_opened)
        bolt.action(blocks.FEEDBACK_ACTION)(self.on_feedback)
        bolt.action(home.NEW_REQUEST_ACTION)(self.on_new_request)
        bolt.options(home.PROPERTY_ACTION)(self.on_property_search)
        bolt.view_submission(home.REQUEST_VIEW)(self.on_request_submitted)

    # -- the assistant panel ------------------------------------------------------------------------------
    async def on_thread_started(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        thread: dict[str, Any] = event.get("assistant_thread") or {}
        user, channel, ts = thread.get("user_id"), thread.get("channel_id"), thread.get("thread_ts")
        if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)):
            log.info("ignored an assistant_thread_started event without user, channel or thread")
            return
        prompts = [
            {"title": s.title, "message": s.message} for s in await self.core.surfaces.suggestions(caller(context))
        ]
        if not prompts:
            return
        await call(
            self.client,
            "assistant.threads.setSuggestedPrompts",
            channel_id=channel,
            thread_ts=ts,
            title="Try one of these:",
            prompts=prompts[:4],
        )

    async def on_context_changed(self, event: dict[str, Any]) -> None:
        # The person moved to another channel with the panel open; propbot's answers do not depend on it.
        log.debug("assistant thread context changed")

    async def set_title(self, channel: str, thread: str, question: str) -> None:
        """Name a panel thread after its first question (once per thread, whichever process sees it)."""
        if not await self.core.first_delivery(f"slack-title:{channel}:{thread}"):
            return
        title = " ".join(question.split())
        title = title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"
        await call(self.client, "assistant.threads.setTitle", channel_id=channel, thread_ts=thread, title=title)

    # -- feedback ------------------------------------------------------------------------------------------
    async def on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        user: dict[str, Any] = body.get("user") or {}
        user_id = str(user.get("id") or "")
        way, _, used = str(action.get("value") or "").partition("|")
        channel = click_channel(body)
        if not user_id or way not in ("good", "bad") or not channel:
            log.info("ignored a feedback click without a user, a channel or a known value")
            return
        message: dict[str, Any] = body.get("message") or {}
        thread = message.get("thread_ts") if isinstance(message.get("thread_ts"), str) else None
        asking = caller(context)
        where = Conversation(
            platform="slack",
            workspace=installation(context),
            channel=channel,
            thread=thread,
            thread_history=channel.startswith("D") and thread is not None,
        )
        feedback = Feedback(
            user=asking.user, conversation=where.key, positive=way == "good", tools=[t for t in used.split(",") if t]
        )
        self.core.spawn(self._record(asking, feedback, channel, user_id, thread), name="slack:feedback")

    async def _record(self, asking: Caller, feedback: Feedback, channel: str, user_id: str, thread: str | None) -> None:
        said = await self.core.surfaces.feedback(asking, feedback)
        extra = {"thread_ts": thread} if thread else {}
        await call(self.client, "chat.postEphemeral", channel=channel, user=user_id, text=said, **extra)

    # -- App Home and the request modal ----------------------------------------------------------------------
    async def on_home_opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        user, tab = event.get("user"), event.get("tab")
        if tab not in (None, "home") or not isinstance(user, str):
            return  # the Messages tab: nothing to publish
        dm = event.get("channel") if isinstance(event.get("channel"), str) else ""
        self.core.spawn(self.tab.publish(user, caller(context), str(dm)), name="slack:home")

    async def on_new_request(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        trigger = body.get("trigger_id")
        if not isinstance(trigger, str):
            return
        form = await self.core.surfaces.form(caller(context))
        if form is None:
            log.info("no request form for %s: their role may not request maintenance", caller(context).user)
            return
        value = str(action.get("value") or "")
        view = home.request_modal("" if value == "-" else value, form["issue_type"], form["priority"])
        await call(self.client, "views.open", trigger_id=trigger, view=view)

    async def on_property_search(self, ack: AsyncAck, payload: dict[str, Any], context: AsyncBoltContext) -> None:
        query = str(payload.get("value") or "")
        found = await self.core.surfaces.choices(caller(context), query)
        options = [{"text": {"type": "plain_text", "text": label[:75]}, "value": value} for value, label in found]
        await ack(options=options)

    async def on_request_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        arguments, post_in = home.read_request(((view.get("state") or {}).get("values")) or {})
        problems = self.core.surfaces.problems(home.REQUEST_TOOL, arguments)
        if problems:
            # Shown under the fields in the still-open modal; nothing was requested.
            errors = {(field if field in arguments else "description"): text for field, text in problems.items()}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user: dict[str, Any] = body.get("user") or {}
        user_id = str(user.get("id") or "")
        channel = post_in or str(view.get("private_metadata") or "")
        if not user_id or not channel:
            log.warning("a request form came without a user or a place to post its card")
            return
        self.core.spawn(self._request(user_id, caller(context), channel, arguments), name="slack:form")

    async def _request(self, user_id: str, asking: Caller, channel: str, arguments: dict[str, Any]) -> None:
        conversation = Conversation(platform="slack", workspace=asking.workspace, channel=channel)
        asking = asking.model_copy(update={"name": await self.names.get(user_id)})
        replies = await self.core.surfaces.request(asking, conversation, home.REQUEST_TOOL, arguments)
        await self.responder.post_replies(conversation, replies)
        asked = any(isinstance(r, ApprovalRequest) for r in replies)
        notice = (
            "Your request was sent for approval."
            if asked
            else " ".join(r.text for r in replies if isinstance(r, TextReply))
        )
        await self.tab.publish(user_id, asking, channel if channel.startswith("D") else "", notice)
