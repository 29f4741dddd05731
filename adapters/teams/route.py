"""Microsoft Teams: `POST /api/messages` through botbuilder's CloudAdapter on the shared aiohttp app.

The adapter translates and decides nothing: an activity becomes an `Incoming` or a `Decision`, and the
core's replies become activities and Adaptive Cards. Messages are acknowledged at once and answered
proactively from a stored conversation reference, so Teams' ~15 s redelivery never fires and any
process can send the answer. botbuilder-python is archived: every botbuilder import lives in
adapters/teams/, so moving to the Microsoft 365 Agents SDK touches nothing else.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity

from adapters.teams.activity import loopback_service_url, tenant_of, well_formed
from adapters.teams.auth import (
    AUTH_TIMEOUT,
    AppTokens,
    AuthConfig,
    CredentialFactory,
    InboundAuth,
    audience_refusal,
    local_mode_refusal,
)
from adapters.teams.config import TeamsConfig
from adapters.teams.inbound import INVOKE_WAIT, TeamsInbound
from adapters.teams.live import teams_streaming
from adapters.teams.outbound import TeamsResponder
from bot.core.port import CorePort
from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)


class TeamsRoute:
    """The HTTP side: parse, authenticate, check the tenant, then hand the activity to the inbound turn."""

    def __init__(
        self,
        config: TeamsConfig,
        core: CorePort,
        *,
        invoke_wait: float = INVOKE_WAIT,
        auth_timeout: float = AUTH_TIMEOUT,
    ) -> None:
        self.config = config
        self.core = core
        self.app_id = config.app_id
        self.tenants = config.allowed_tenants
        auth_config = AuthConfig(config)
        self.tokens = AppTokens(config.app_id, config.app_password)
        credentials = CredentialFactory(config, auth_config, self.tokens)
        self.adapter = CloudAdapter(
            ConfigurationBotFrameworkAuthentication(auth_config, credentials_factory=credentials)
        )
        self.auth = InboundAuth(self.adapter.bot_framework_authentication, auth_timeout)
        streaming = teams_streaming(config.streaming)
        self.responder = TeamsResponder(
            self.adapter, self.app_id, core, streaming, config.stream_interval, config.document_link
        )
        self.turn = TeamsInbound(core, self.responder, invoke_wait, config.thread_memory)

    # -- HTTP ------------------------------------------------------------------------------------
    async def on_http(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            activity = Activity().deserialize(body) if isinstance(body, dict) else None
        except Exception:  # msrest raises its own family of errors for wrong shapes
            activity = None
        if not well_formed(activity):
            return web.json_response({"error": "not a Bot Framework activity"}, status=400)
        local = (
            None
            if self.app_id
            else local_mode_refusal(request.remote, request.headers, loopback_service_url(activity.service_url))
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
            auth = await self.auth.authenticate(activity, auth_header)
        except TimeoutError:
            log.warning("Teams request not accepted: its token could not be checked in time (signing keys slow?)")
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        except Exception as exc:  # PermissionError, or a JWT decode error for a malformed token
            log.warning("Teams request refused: %s", type(exc).__name__)
            return web.json_response({"error": "unauthorized"}, status=401)
        tenant = tenant_of(activity, "" if self.app_id else "local")
        refused = audience_refusal(activity.channel_id, tenant, self.tenants, authenticated=bool(self.app_id))
        if refused is not None:
            log.warning("refused a Teams %s activity: %s", activity.type, refused)
            return web.json_response({"error": "this tenant or channel may not use propbot"}, status=403)
        try:
            invoke = await self.adapter.process_activity(auth, activity, self.turn.on_turn)
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
        self.auth.close()
        await self.tokens.close()
