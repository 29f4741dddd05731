"""Wiring Slack into the server: the Web API client, the Bolt app with propbot's listeners, and the HTTP
route or the Socket Mode connection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.config import SlackConfig
from adapters.slack.door import SlackDirectory, SlackDoor
from adapters.slack.groups import SlackGroups
from adapters.slack.http import events_handler, on_bolt_error, on_rate_limited
from adapters.slack.listeners import SlackListeners
from adapters.slack.live import slack_streaming
from adapters.slack.responder import SlackResponder
from adapters.slack.surfaces import HomeTab, SlackSurfaces
from adapters.slack.team import TeamButtons
from adapters.slack.web import UserNames, web_client
from bot.core.port import CorePort

log = logging.getLogger(__name__)
# Bolt logs rejected bodies at INFO and copies the root level onto its loggers; this fixed level keeps
# message text out of the logs whatever LOG_LEVEL says.
_bolt_log = logging.getLogger(f"{__name__}.bolt")
_bolt_log.setLevel(logging.WARNING)

EVENTS_PATH = "/slack/events"
BOLT = web.AppKey("slack_bolt", AsyncApp)


def build_bolt(config: SlackConfig, client: AsyncWebClient) -> AsyncApp:
    return AsyncApp(
        name="propbot",
        logger=_bolt_log,
        client=client,
        signing_secret=config.signing_secret or "",
        # Listeners only normalise and enqueue, so they finish before the ack and every task they
        # start is one of ours (tracked, drained on shutdown) rather than a fire-and-forget future.
        process_before_response=True,
        # Our listeners drop every bot-written message themselves and log why; Bolt's own filter would drop
        # propbot's echoes silently.
        ignoring_self_events_enabled=False,
        # Unhandled payloads go to `on_bolt_error` (adapters.slack.http) instead of Bolt's multi-line warning.
        raise_error_for_unhandled_request=True,
    )


def mount(config: SlackConfig) -> Callable[[web.Application, CorePort], Awaitable[Callable[[], Awaitable[None]]]]:
    """The server's mount for Slack with this configuration."""

    async def mount_with(app: web.Application, core: CorePort) -> Callable[[], Awaitable[None]]:
        return await _mount(app, core, config)

    return mount_with


async def _mount(app: web.Application, core: CorePort, config: SlackConfig) -> Callable[[], Awaitable[None]]:
    session = aiohttp.ClientSession()
    client = web_client(config, session)
    responder = SlackResponder(client, core, slack_streaming(config.streaming), config.stream_interval)
    names = UserNames(client)
    groups = SlackGroups(client)
    core.register("slack", responder, SlackDirectory(client, names), groups)
    bolt = build_bolt(config, client)
    bolt.error(on_bolt_error)
    bolt.middleware(on_rate_limited)
    # Every payload, whatever listener it is for, passes the core's gate here first.
    bolt.middleware(SlackDoor(core, names, responder.ephemeral).check)
    tab = HomeTab(core, client)
    surfaces = SlackSurfaces(core, responder, names, tab)
    surfaces.register(bolt)
    TeamButtons(core, client, responder.ephemeral).register(bolt)  # before the listeners' catch-all for unknown buttons
    groups.register(bolt, core.directory_changed)  # before their catch-all for other events
    SlackListeners(core, responder, names, surfaces, config.thread_memory).register(bolt)
    app[BOLT] = bolt  # what the server serves, for whoever needs to read its listeners (the door test)
    stop_socket: Callable[[], Awaitable[None]] | None = None
    if config.app_token:
        from adapters.slack.socket import socket_mode

        stop_socket = socket_mode(app, bolt, config.app_token)
        log.info("Slack: Socket Mode (SLACK_APP_TOKEN is set); %s is not served", EVENTS_PATH)
    elif config.signing_secret:
        app.router.add_post(EVENTS_PATH, events_handler(bolt))
        log.info("Slack: events and interactivity on POST %s", EVENTS_PATH)

    async def cleanup() -> None:
        if stop_socket is not None:
            await stop_socket()
        await session.close()

    return cleanup
