"""Slack through slack-bolt: events and button clicks in, Block Kit out.

The adapter translates and decides nothing: Bolt verifies and routes, `bot.ingress.dispatch` runs turns,
`bot.core.agent` decides approvals. Mount it with `bot.app.server.create_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.format import escape
from adapters.slack.http import events_handler, on_bolt_error, on_rate_limited
from bot.config import Settings
from bot.core.port import CorePort
from bot.types import (
    Approval,
    ApprovalRequest,
    Conversation,
    Decision,
    DecisionAction,
    DecisionResult,
    Incoming,
    Reply,
    TextReply,
)

log = logging.getLogger(__name__)
# slack_sdk logs request bodies at DEBUG and Bolt logs rejected bodies at INFO, and Bolt copies the root
# level onto its loggers; these fixed levels keep message text out of the logs whatever LOG_LEVEL says.
_sdk_log = logging.getLogger(f"{__name__}.web")
_sdk_log.setLevel(logging.INFO)
_bolt_log = logging.getLogger(f"{__name__}.bolt")
_bolt_log.setLevel(logging.WARNING)

EVENTS_PATH = "/slack/events"
WORKING_REACTION = "hourglass_flowing_sand"
NAME_TTL = 3600.0
NAME_BUDGET = 1.5  # seconds a users.info lookup may hold up the ack before we go without a name
MAX_APPROVAL_ID = 100
_ACTIONS = {blocks.APPROVE_ACTION: DecisionAction.APPROVE, blocks.CANCEL_ACTION: DecisionAction.CANCEL}


def web_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """The Web API client; slack_sdk retries nothing but connection resets unless told to."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        session=session,
        logger=_sdk_log,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=1),
        ],
    )


async def call(client: AsyncWebClient, method: str, **params: Any) -> dict[str, Any] | None:
    """One Web API call; failures are logged with the method and Slack's error code and return None."""
    try:
        response = await getattr(client, method.replace(".", "_"))(**params)
    except SlackApiError as exc:
        log.warning("slack %s failed: %s", method, _api_error(exc.response))
        return None
    except (SlackClientError, aiohttp.ClientError, TimeoutError, AttributeError, ValueError) as exc:
        # AttributeError/ValueError: slack_sdk's own response check calls `.get` on the body, which is a str
        # when a proxy answers text/plain (a 403 page) instead of Slack's JSON. The exception text can
        # carry the request URL but never the token (it travels in a header).
        log.warning("slack %s failed: %s", method, type(exc).__name__)
        return None
    data: dict[str, Any] = response.data if isinstance(response.data, dict) else {}
    return data


def _api_error(response: Any) -> str:
    """Slack's error code, or the HTTP status when the body was not Slack's JSON (an HTML 502 page)."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return f"HTTP {status}" if status else "unreadable response"


class UserNames:
    """Display names (and Enterprise Grid orgs) from users.info, cached so a busy channel does not hit Slack's
    rate limits."""

    def __init__(self, client: AsyncWebClient, ttl: float = NAME_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str | None, str | None]] = {}

    async def _lookup(self, user: str) -> tuple[str | None, str | None]:
        hit = self._cache.get(user)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2]
        data = await call(self.client, "users.info", user=user)
        info: dict[str, Any] = (data or {}).get("user") or {}
        profile: dict[str, Any] = info.get("profile") or {}
        name = profile.get("display_name") or info.get("real_name") or info.get("name") or None
        org = (info.get("enterprise_user") or {}).get("enterprise_id")
        found = (name if isinstance(name, str) else None, org if isinstance(org, str) and org else None)
        # A failed lookup is cached briefly, so an outage does not add a call to every message.
        self._cache[user] = (time.monotonic() + (self.ttl if data else 60.0), *found)
        return found

    async def get(self, user: str) -> str | None:
        return (await self._lookup(user))[0]

    async def quick(self, user: str) -> str | None:
        try:
            return await asyncio.wait_for(self.get(user), NAME_BUDGET)
        except TimeoutError:
            return None

    async def org(self, user: str) -> str | None:
        """The Enterprise Grid org Slack's profile of the user names (`enterprise_user.enterprise_id`), if any.
        Payloads do not carry it: an event names the user's workspace only."""
        try:
            return (await asyncio.wait_for(self._lookup(user), NAME_BUDGET))[1]
        except TimeoutError:
            return None


class SlackResponder:
    """The core's way back into Slack (bot.ingress.dispatch.Responder)."""

    def __init__(self, client: AsyncWebClient, core: CorePort) -> None:
        self.client = client
        self.core = core  # its spawn() is tracked: shutdown drains the reaction calls with the turns

    @contextlib.asynccontextmanager
    async def working(self, msg: Incoming) -> AsyncIterator[None]:
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

    async def post_replies(self, conversation: Conversation, replies: list[Reply]) -> None:
        for reply in replies:
            if isinstance(reply, TextReply):
                for message in blocks.reply_messages(reply):
                    await self.post(conversation, message.payload())
            elif isinstance(reply, ApprovalRequest):
                await self.post_card(conversation, reply.approval)

    async def post(self, conversation: Conversation, payload: dict[str, Any]) -> dict[str, Any] | None:
        thread = {"thread_ts": conversation.thread} if conversation.thread else {}
        return await call(self.client, "chat.postMessage", channel=conversation.channel, **thread, **payload)

    async def post_card(self, conversation: Conversation, approval: Approval) -> None:
        posted = await self.post(conversation, blocks.approval_card(approval))
        if posted is None:
            log.error("approval %s has no card: posting it failed; it will expire unanswered", approval.id)
            return
        await self.core.attach_card(approval.id, {"channel": posted.get("channel"), "ts": posted.get("ts")})

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        await self.close_card(approval, result, approval.card_ref)

    async def close_card(self, approval: Approval, result: DecisionResult, ref: dict[str, Any]) -> None:
        """Replace the card (no buttons: who, when, outcome), then post the follow-up in its thread."""
        where = approval.card_ref if approval.card_ref.get("ts") else ref
        if where.get("channel") and where.get("ts"):
            card = blocks.closed_card(approval)
            await call(self.client, "chat.update", channel=where["channel"], ts=where["ts"], **card)
        else:
            log.warning("approval %s was closed but its card is unknown; only the answer is posted", approval.id)
        await self.post_replies(approval.conversation, result.replies)

    async def ephemeral(self, channel: str, user: str, text: str, thread: str | None) -> None:
        extra = {"thread_ts": thread} if thread else {}
        await call(self.client, "chat.postEphemeral", channel=channel, user=user, text=escape(text), **extra)


class SlackListeners:
    """Bolt listeners: normalise a Slack payload, hand it to the core, never wait for the model."""

    def __init__(
        self,
        core: CorePort,
        responder: SlackResponder,
        names: UserNames,
        allowed_teams: frozenset[str] = frozenset(),
    ) -> None:
        self.core = core
        self.responder = responder
        self.names = names
        # Besides the installation's own people: the teams or Grid orgs of SLACK_ALLOWED_TEAMS ("*": anyone).
        self.allowed_teams = allowed_teams

    async def _allowed(self, principal: str, user: str, context: AsyncBoltContext) -> bool:
        """Whether propbot answers this person at all: their own team is this installation's workspace or Grid
        org or one in SLACK_ALLOWED_TEAMS, or their Slack profile puts them in one of those Grid orgs (the
        other workspaces of your org, a partner listed by its `E…` id). Unknown means no."""
        authorized = context.authorize_result
        home = {installation(context), *((authorized.team_id, authorized.enterprise_id) if authorized else ())}
        allowed = self.allowed_teams | {team for team in home if team}
        if "*" in allowed or principal.split(":")[1] in allowed:
            return True
        org = await self.names.org(user)
        return org is not None and org in allowed

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
        await self._accept(body, event, context, thread=event.get("thread_ts") or event.get("ts"))

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("channel_type") != "im":
            return
        await self._accept(body, event, context, thread=event.get("thread_ts"))

    async def _accept(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext, thread: Any
    ) -> None:
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        bot_user = context.bot_user_id
        if (reason := _not_a_question(event, bot_user)) is not None:
            # propbot's own replies come back as message.im events in every DM: worth a line only when debugging.
            own = bool(event.get("bot_id")) and event.get("bot_id") == context.bot_id
            log.log(logging.DEBUG if own else logging.INFO, "ignored a Slack %s event: %s", event.get("type"), reason)
            return
        text = strip_mention(str(event.get("text") or ""), bot_user)
        if not (isinstance(channel, str) and isinstance(ts, str) and text):
            log.info("ignored an empty or incomplete %s event", event.get("type"))
            return
        # An event that names no team for its author is from this workspace unless the channel is shared.
        author_team = event.get("user_team") or event.get("team")
        if not author_team and body.get("is_ext_shared_channel") is not True:
            author_team = installation(context)
        principal = user_principal(str(user), author_team, context)
        if not await self._allowed(principal, str(user), context):
            # A Slack Connect partner's people: propbot answers only the teams it is told to.
            log.info("ignored a Slack %s event: %s is not in SLACK_ALLOWED_TEAMS", event.get("type"), principal)
            return
        team = installation(context)
        conversation = Conversation(
            platform="slack",
            workspace=team,
            channel=channel,
            thread=thread if isinstance(thread, str) else None,
            reference={"ts": ts},
        )
        msg = Incoming(
            conversation=conversation,
            user=principal,
            user_name=await self.names.quick(str(user)),
            text=text,
            event_id=str(body.get("event_id") or f"{channel}:{ts}"),
        )
        # Raising here answers Slack with a 500, so Slack delivers the event again later.
        await self.core.submit(msg)

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
        channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
        message: dict[str, Any] = body.get("message") or {}
        approval_id = action.get("value")
        if not (user_id and team and isinstance(approval_id, str) and 0 < len(approval_id) <= MAX_APPROVAL_ID):
            log.warning("ignored a decision click without a usable user or approval id")
            return
        # Without `user.team_id`, the payload's `team` (the clicker's side in a Slack Connect channel), never
        # the home workspace by default: a missing field must not lend anyone the host's roles.
        team_field = body.get("team")
        clicker_team = user.get("team_id") or (team_field.get("id") if isinstance(team_field, dict) else None)
        principal = user_principal(user_id, clicker_team, context)
        if not await self._allowed(principal, user_id, context):
            log.info("refused a Slack click: %s is not in SLACK_ALLOWED_TEAMS", principal)
            if channel:
                note = "You are not allowed to use propbot in this workspace; nothing was changed."
                await self.responder.ephemeral(channel, user_id, note, message.get("thread_ts"))
            return
        decision = Decision(
            approval_id=approval_id,
            user=principal,
            action=_ACTIONS[str(action.get("action_id"))],
            platform="slack",
            workspace=team,
            user_name=await self.names.get(user_id),
        )
        result = await self.core.decide(decision)
        log.info("slack click %s on %s by %s: %s", decision.action.value, approval_id, decision.user, result.outcome)
        if not result.changed or result.approval is None:
            # Refused, unknown, already decided or store down: only the clicker hears about it.
            if channel:
                await self.responder.ephemeral(channel, user_id, result.message, message.get("thread_ts"))
            return
        ref = {"channel": channel, "ts": (body.get("container") or {}).get("message_ts") or message.get("ts")}
        await self.responder.close_card(result.approval, result, ref)


# Message subtypes that carry a person's new words; every other subtype is a change to the channel or a
# message (edits, deletions, joins, bot posts), not a question for the agent.
_QUESTION_SUBTYPES = frozenset({"file_share", "thread_broadcast"})


def _not_a_question(event: dict[str, Any], bot_user: str | None) -> str | None:
    """Why an event is not a person asking the agent something, or None when it is."""
    subtype = event.get("subtype")
    if subtype is not None and subtype not in _QUESTION_SUBTYPES:
        return f"subtype {subtype!r} is not a new message from a person"
    # The objects mark the message whatever they hold: an `edited` without its `ts` is still an edit.
    if event.get("bot_id") or event.get("bot_profile") is not None:
        return "written by a bot (propbot's own replies included)"
    if event.get("edited") is not None:
        return "an edit of an earlier message"
    user = event.get("user")
    if not (isinstance(user, str) and user):
        return "no author"
    if user == bot_user:
        return "written by propbot itself"
    return None


def installation(context: AsyncBoltContext) -> str:
    """The id of the Slack installation a payload arrived through: the conversation's workspace key.

    propbot runs on one bot token, so this is what `auth.test` said about that token (Bolt's authorization
    keeps it), the same for every payload. The payload's own `team` would not do: in a Slack Connect channel
    it is the other organisation's, and it is null in the clicks of an org-wide Enterprise Grid install."""
    authorized = context.authorize_result
    if authorized is not None and (authorized.team_id or authorized.enterprise_id):
        return str(authorized.team_id or authorized.enterprise_id)
    return str(context.team_id or context.enterprise_id or "")


def user_principal(user: str, user_team: Any, context: AsyncBoltContext) -> str:
    """`slack:<the user's own team>:<user id>`, as written in the permissions file.

    The user's own team (not the installation's) so that a partner organisation's people in a Slack Connect
    channel never match `slack:<your team>:*`. A team that is this installation's own (its workspace or its
    Enterprise Grid org) is written as the installation id, so a person has one principal everywhere."""
    home = installation(context)
    # A payload that names no team for its user gets no team: it matches no `*` entry and no allow-list.
    team = str(user_team) if isinstance(user_team, str) and user_team else "unknown"
    authorized = context.authorize_result
    if authorized is not None and team in (authorized.team_id, authorized.enterprise_id):
        team = home
    return f"slack:{team}:{user}"


def strip_mention(text: str, bot_user: str | None) -> str:
    """The user's words: our own mention removed, Slack's &amp; &lt; &gt; turned back into characters."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(\|[^>]*)?>", " ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split(" ")).strip()


def build_bolt(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    return AsyncApp(
        name="propbot",
        logger=_bolt_log,
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        # Listeners only normalise and enqueue, so they finish before the ack and every task they
        # start is one of ours (tracked, drained on shutdown) rather than a fire-and-forget future.
        process_before_response=True,
        # Our listeners drop every bot-written message themselves and log why; Bolt's own filter would drop
        # propbot's echoes silently.
        ignoring_self_events_enabled=False,
        # Unhandled payloads go to `on_bolt_error` (adapters.slack.http) instead of Bolt's multi-line warning.
        raise_error_for_unhandled_request=True,
    )


async def mount(app: web.Application, core: CorePort, settings: Settings) -> Callable[[], Awaitable[None]]:
    session = aiohttp.ClientSession()
    client = web_client(settings, session)
    responder = SlackResponder(client, core)
    core.register("slack", responder)
    bolt = build_bolt(settings, client)
    bolt.error(on_bolt_error)
    bolt.middleware(on_rate_limited)
    SlackListeners(core, responder, UserNames(client), settings.allowed_slack_teams).register(bolt)
    stop_socket: Callable[[], Awaitable[None]] | None = None
    if settings.slack_app_token:
        from adapters.slack.socket import socket_mode

        stop_socket = socket_mode(app, bolt, settings.slack_app_token)
        log.info("Slack: Socket Mode (SLACK_APP_TOKEN is set); %s is not served", EVENTS_PATH)
    elif settings.slack_signing_secret:
        app.router.add_post(EVENTS_PATH, events_handler(bolt))
        log.info("Slack: events and interactivity on POST %s", EVENTS_PATH)

    async def cleanup() -> None:
        if stop_socket is not None:
            await stop_socket()
        await session.close()

    return cleanup
