"""Microsoft Teams: `POST /api/messages` through botbuilder's CloudAdapter on the shared aiohttp app.

The adapter translates and decides nothing: an activity becomes an `Incoming` or a `Decision`, and the
core's replies become activities and Adaptive Cards. Messages are acknowledged at once and answered
proactively from a stored conversation reference, so Teams' ~15 s redelivery never fires and any
process can send the answer. botbuilder-python is archived: every botbuilder import lives in
adapters/teams*, so moving to the Microsoft 365 Agents SDK touches nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeGuard
from urllib.parse import urlparse

from aiohttp import web
from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.teams import cards
from adapters.teams.auth import (
    AUTH_TIMEOUT,
    AppTokens,
    AuthConfig,
    CredentialFactory,
    InboundAuth,
    audience_refusal,
    local_mode_refusal,
)
from bot.config import Settings
from bot.core.port import CorePort
from bot.errors import ConfigError, StoreUnavailable
from bot.types import (
    Approval,
    ApprovalRequest,
    Conversation,
    Decision,
    DecisionAction,
    DecisionOutcome,
    DecisionResult,
    Incoming,
    Reply,
    TextReply,
)

log = logging.getLogger(__name__)

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
TYPING_EVERY: Final = 3.0
# Teams shows "something went wrong" when an invoke is not answered within a few seconds; a decision
# that takes longer (the tool runs, then the model answers) is finished in the background.
INVOKE_WAIT: Final = 4.0
MAX_CARDS: Final = 10
MESSAGE_RESPONSE: Final = "application/vnd.microsoft.activity.message"
_MESSAGE_ID: Final = re.compile(r";messageid=([^;]+)", re.IGNORECASE)


def _loopback(service_url: str) -> bool:
    try:
        return (urlparse(service_url).hostname or "") in LOOPBACK
    except ValueError:
        return False


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _well_formed(activity: Activity | None) -> TypeGuard[Activity]:
    return bool(
        activity is not None
        and activity.type
        and activity.service_url
        and activity.conversation is not None
        and activity.conversation.id
        and activity.from_property is not None
        and activity.from_property.id
    )


def _tenant(activity: Activity, missing: str = "local") -> str:
    tenant = _dict(_dict(activity.channel_data).get("tenant"))
    # botbuilder-schema 4.17 maps ConversationAccount.tenant_id to the JSON key "tenantID"; Teams sends
    # "tenantId", which deserialises into the conversation's additional_properties instead.
    conversation = activity.conversation
    extra = _dict(getattr(conversation, "additional_properties", None))
    for candidate in (tenant.get("id"), getattr(conversation, "tenant_id", None), extra.get("tenantId")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return missing


def _principal(activity: Activity) -> str:
    """`teams:<tenant>:<AAD object id>`: an object id is unique only within its tenant."""
    sender = activity.from_property
    return f"teams:{_tenant(activity)}:{sender.aad_object_id or sender.id}"


def strip_bot_mention(activity: Activity) -> str:
    """The text without `<at>bot</at>`; mentions of other people stay, they are part of the message."""
    text = activity.text if isinstance(activity.text, str) else ""
    bot_id = activity.recipient.id if activity.recipient else None
    # Entities arrive as loosely typed JSON: anything not shaped like a mention of us is left alone.
    for entity in activity.entities or []:
        extra = _dict(getattr(entity, "additional_properties", None))
        mentioned = _dict(extra.get("mentioned"))
        if str(getattr(entity, "type", "") or "").lower() != "mention" or not bot_id or mentioned.get("id") != bot_id:
            continue
        tag = extra.get("text")
        text = text.replace(tag if isinstance(tag, str) and tag else f"<at>{mentioned.get('name', '')}</at>", " ")
    return re.sub(r"[ \t]+", " ", text).strip()


def conversation_of(activity: Activity) -> Conversation:
    full_id: str = activity.conversation.id
    root = _MESSAGE_ID.search(full_id)
    is_channel = (activity.conversation.conversation_type or "") == "channel"
    reference = TurnContext.get_conversation_reference(activity).serialize()
    return Conversation(
        platform="teams",
        workspace=_tenant(activity),
        channel=_MESSAGE_ID.sub("", full_id),
        thread=root.group(1) if root else (activity.id if is_channel else None),
        reference=reference,
    )


def _response(body: Any, status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, **body}


class TeamsBot:
    """The Teams route, the bot's turn logic, and the core's Responder for the "teams" platform."""

    def __init__(
        self,
        settings: Settings,
        core: CorePort,
        *,
        invoke_wait: float = INVOKE_WAIT,
        auth_timeout: float = AUTH_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.core = core
        self.app_id = settings.microsoft_app_id
        self.invoke_wait = invoke_wait
        self.tenants = settings.allowed_tenants
        config = AuthConfig(settings)
        self.tokens = AppTokens(settings.microsoft_app_id, settings.microsoft_app_password)
        credentials = CredentialFactory(settings, config, self.tokens)
        self.adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(config, credentials_factory=credentials))
        self.inbound = InboundAuth(self.adapter.bot_framework_authentication, auth_timeout)

    # -- HTTP ------------------------------------------------------------------------------------
    async def on_http(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            activity = Activity().deserialize(body) if isinstance(body, dict) else None
        except Exception:  # msrest raises its own family of errors for wrong shapes
            activity = None
        if not _well_formed(activity):
            return web.json_response({"error": "not a Bot Framework activity"}, status=400)
        local = (
            None
            if self.app_id
            else local_mode_refusal(request.remote, request.headers, _loopback(activity.service_url))
        )
        if local is not None:
            # Local mode authenticates nothing, so it serves this machine only: a caller elsewhere could
            # claim any aadObjectId (and so any role), and a public serviceUrl would make the bot POST to it.
            log.warning("local mode refused an activity: %s", local)
            return web.json_response({"error": "unauthorized: local mode serves loopback only"}, status=401)
        if not self.core.accepting:
            return web.json_response({"error": "shutting down"}, status=503)  # Teams retries
        auth_header = request.headers.get("Authorization", "")
        try:
            auth = await self.inbound.authenticate(activity, auth_header)
        except TimeoutError:
            log.warning("Teams request not accepted: its token could not be checked in time (signing keys slow?)")
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        except Exception as exc:  # PermissionError, or a JWT decode error for a malformed token
            log.warning("Teams request refused: %s", type(exc).__name__)
            return web.json_response({"error": "unauthorized"}, status=401)
        tenant = _tenant(activity, "" if self.app_id else "local")
        refused = audience_refusal(activity.channel_id, tenant, self.tenants, authenticated=bool(self.app_id))
        if refused is not None:
            log.warning("refused a Teams %s activity: %s", activity.type, refused)
            return web.json_response({"error": "this tenant or channel may not use propbot"}, status=403)
        try:
            invoke = await self.adapter.process_activity(auth, activity, self.on_turn)
        except StoreUnavailable:
            # Not accepted: a 503 makes Teams deliver it again once the store is back.
            log.warning("Teams activity not accepted: state store unreachable")
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        except Exception:
            log.exception("Teams activity %s failed", activity.type)
            return web.json_response({"error": "internal error"}, status=500)
        if invoke is None:
            return web.Response(status=200)
        # Serialised here: the stock CloudAdapter.process() feeds a plain dict body to an msrest serializer and fails.
        payload = invoke.body.serialize() if hasattr(invoke.body, "serialize") else invoke.body
        if payload is None:
            return web.Response(status=int(invoke.status))
        return web.json_response(payload, status=int(invoke.status))

    async def close(self) -> None:
        self.inbound.close()
        await self.tokens.close()

    # -- inbound turns -----------------------------------------------------------------------------
    async def on_turn(self, ctx: TurnContext) -> None:
        activity: Activity = ctx.activity
        if activity.type == ActivityTypes.invoke and activity.name == "adaptiveCard/action":
            body = await self._execute(activity)
            await ctx.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200, body=body))
            )
        elif activity.type == ActivityTypes.message and isinstance(activity.value, dict):
            await self._submit(activity)
        elif activity.type == ActivityTypes.message:
            text = strip_bot_mention(activity)
            if text:
                await self.core.submit(self._incoming(activity, text))
            else:
                log.info("ignored a Teams message with no words for propbot (only a mention, or attachments)")
        elif activity.type == ActivityTypes.invoke:
            # botbuilder answers an invoke nobody handled with 501; an invoke propbot has no use for is the
            # sender's mistake, so it is refused by name instead.
            log.info("refused a Teams invoke %r: propbot does not handle it", activity.name)
            error = {"code": "BadRequest", "message": f"propbot does not handle the invoke {activity.name!r}."}
            body = _response({"type": "application/vnd.microsoft.error", "value": error}, 400)
            await ctx.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=400, body=body))
            )
        else:
            log.info("ignored a Teams %s activity: only messages and card actions are handled", activity.type)

    def _incoming(self, activity: Activity, text: str) -> Incoming:
        return Incoming(
            conversation=conversation_of(activity),
            user=_principal(activity),
            user_name=activity.from_property.name,
            text=text,
            event_id="teams:" + (activity.id or str(uuid.uuid4())),
        )

    def _decision(self, activity: Activity, approval_id: Any, action: str) -> Decision | None:
        if not isinstance(approval_id, str) or action not in ("approve", "cancel"):
            return None
        return Decision(
            approval_id=approval_id,
            user=_principal(activity),
            user_name=activity.from_property.name,
            action=DecisionAction(action),
            platform="teams",
            workspace=_tenant(activity),
        )

    async def _execute(self, activity: Activity) -> dict[str, Any]:
        """An Action.Execute click; the invoke's answer replaces the card in place."""
        action = _dict(_dict(activity.value).get("action"))
        data = _dict(action.get("data"))
        verb = action.get("verb")
        decision = self._decision(
            activity, data.get("approval_id"), cards.VERBS.get(verb, "") if isinstance(verb, str) else ""
        )
        if decision is None:
            error = {"code": "BadRequest", "message": "This card action is not one propbot knows."}
            return _response({"type": "application/vnd.microsoft.error", "value": error}, 400)
        task = self.core.spawn(self.core.decide(decision), name="teams:decide")
        try:
            result: DecisionResult = await asyncio.wait_for(asyncio.shield(task), self.invoke_wait)
        except TimeoutError:
            self.core.spawn(self._conclude(task, activity), name="teams:decide-late")
            return _response({"type": MESSAGE_RESPONSE, "value": "Working on it; the card updates when done."})
        except Exception:
            log.exception("deciding approval %s failed", decision.approval_id)
            error = {"code": "InternalError", "message": "propbot hit an error while deciding this request."}
            return _response({"type": "application/vnd.microsoft.error", "value": error}, 500)
        approval = result.approval
        if result.replies and approval is not None:
            self.core.spawn(self._post(approval.conversation, result.replies), name="teams:follow-up")
        if approval is None or result.outcome is DecisionOutcome.UNAVAILABLE:
            return _response({"type": MESSAGE_RESPONSE, "value": result.message})
        if result.outcome is not DecisionOutcome.REFUSED:
            # The invoke answer replaces the card only for the person who clicked; everyone else in a group
            # chat or channel would keep seeing Approve/Cancel on a decided request.
            self.core.spawn(self._replace_card(approval, activity.reply_to_id), name="teams:card")
        content = (
            cards.approval_card(approval, notice=result.message)
            if result.outcome is DecisionOutcome.REFUSED
            else cards.decided_card(approval)
        )
        return _response({"type": cards.CARD_CONTENT_TYPE, "value": content})

    async def _submit(self, activity: Activity) -> None:
        """An Action.Submit click (clients without Universal Actions): a message carrying the card's data."""
        value: dict[str, Any] = activity.value
        decision = self._decision(activity, value.get("approval_id"), str(value.get("action", "")))
        if decision is None:
            return
        # Messages are redelivered when Teams misses our answer; a Submit must not be decided twice. The schema
        # makes `id` optional: without one there is nothing to tell a redelivery by, and the approval's own
        # atomic claim still decides it once.
        delivery = "teams:" + activity.id if isinstance(activity.id, str) and activity.id else None
        if delivery is not None and not await self.core.first_delivery(delivery):
            return
        self.core.spawn(self._conclude(self.core.decide(decision), activity), name="teams:submit")

    async def _conclude(self, pending: Awaitable[DecisionResult], activity: Activity) -> None:
        """Show a decision made outside an invoke answer: update the card, or tell the clicker why not."""
        result = await pending
        approval = result.approval
        if approval is None or result.outcome in (DecisionOutcome.REFUSED, DecisionOutcome.UNAVAILABLE):
            who = activity.from_property.name or "Someone"
            note = TextReply(text=f"{who}: {result.message}")
            await self._post(conversation_of(activity), [note])
            return
        await self._replace_card(approval, activity.reply_to_id)
        if result.replies:
            await self._post(approval.conversation, result.replies)

    # -- Responder ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def working(self, msg: Incoming) -> AsyncIterator[None]:
        typing = asyncio.create_task(self._keep_typing(msg.conversation))
        try:
            yield
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing

    async def deliver(self, msg: Incoming, replies: list[Reply]) -> None:
        await self._post(msg.conversation, replies)

    async def approval_closed(self, approval: Approval, result: DecisionResult) -> None:
        await self._replace_card(approval, None)
        if result.replies:
            await self._post(approval.conversation, result.replies)

    # -- outbound ----------------------------------------------------------------------------------
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

    async def _post(self, conversation: Conversation, replies: list[Reply]) -> None:
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

    async def _replace_card(self, approval: Approval, fallback_id: str | None) -> None:
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


def make_mount(
    *, invoke_wait: float = INVOKE_WAIT, auth_timeout: float = AUTH_TIMEOUT
) -> Callable[[web.Application, CorePort, Settings], Awaitable[Callable[[], Awaitable[None]]]]:
    async def mount_with(app: web.Application, core: CorePort, settings: Settings) -> Callable[[], Awaitable[None]]:
        if not settings.microsoft_app_id and not settings.teams_local_mode:
            raise ConfigError("MICROSOFT_APP_ID should be set to serve Teams (TEAMS_LOCAL_MODE=true to test locally)")
        if problem := settings.teams_problem():
            raise ConfigError(problem)
        bot = TeamsBot(settings, core, invoke_wait=invoke_wait, auth_timeout=auth_timeout)
        if settings.microsoft_app_id and settings.teams_local_mode:
            log.warning("TEAMS_LOCAL_MODE is ignored: MICROSOFT_APP_ID is set, so every Teams request is authenticated")
        if not settings.microsoft_app_id:
            log.warning(
                "Teams runs in LOCAL MODE (TEAMS_LOCAL_MODE=true, no MICROSOFT_APP_ID): requests are not "
                "authenticated, so only loopback peers with loopback serviceUrls are served"
            )
        else:
            log.info(
                "Teams: POST /api/messages for app %s, tenants %s",
                settings.microsoft_app_id,
                ", ".join(sorted(settings.allowed_tenants)),
            )
        core.register("teams", bot)
        app.router.add_post("/api/messages", bot.on_http)
        return bot.close

    return mount_with


mount = make_mount()
