"""Wiring Teams into the server: refuse settings that cannot be served, then mount the route."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.teams.auth import (
    AUTH_TIMEOUT,
)
from adapters.teams.config import TeamsConfig
from adapters.teams.graph import GraphGroups
from adapters.teams.inbound import INVOKE_WAIT, TeamsInbound
from adapters.teams.route import TeamsRoute
from bot.core.port import CorePort
from bot.errors import ConfigError

log = logging.getLogger(__name__)

INBOUND = web.AppKey("teams_inbound", TeamsInbound)  # what the route hands activities to (its invokes and verbs)


def mount(
    config: TeamsConfig, *, invoke_wait: float = INVOKE_WAIT, auth_timeout: float = AUTH_TIMEOUT
) -> Callable[[web.Application, CorePort], Awaitable[Callable[[], Awaitable[None]]]]:
    """The server's mount for Teams with this configuration (and, for tests, other timings)."""

    async def mount_with(app: web.Application, core: CorePort) -> Callable[[], Awaitable[None]]:
        if not config.app_id and not config.local_mode:
            raise ConfigError("MICROSOFT_APP_ID should be set to serve Teams (TEAMS_LOCAL_MODE=true to test locally)")
        if config.problem:
            raise ConfigError(config.problem)
        bot = TeamsRoute(config, core, invoke_wait=invoke_wait, auth_timeout=auth_timeout)
        if config.app_id and config.local_mode:
            log.warning("TEAMS_LOCAL_MODE is ignored: MICROSOFT_APP_ID is set, so every Teams request is authenticated")
        if not config.app_id:
            log.warning(
                "Teams runs in LOCAL MODE (TEAMS_LOCAL_MODE=true, no MICROSOFT_APP_ID): requests are not "
                "authenticated, so only loopback peers with loopback serviceUrls are served"
            )
        else:
            log.info(
                "Teams: POST /api/messages for app %s, tenants %s",
                config.app_id,
                ", ".join(sorted(config.allowed_tenants)),
            )
        graph = None
        if config.graph_client_id and config.graph_client_secret:
            graph = GraphGroups(
                config.graph_client_id, config.graph_client_secret, config.graph_base_url, config.graph_authority
            )
        core.register("teams", bot.responder, groups=graph)
        app.router.add_post("/api/messages", bot.on_http)
        app[INBOUND] = bot.turn

        async def close() -> None:
            await bot.close()
            if graph is not None:
                await graph.close()

        return close

    return mount_with
