"""Wiring Slack into the server: the Web API client, the Bolt app with propbot's listeners, and the HTTP
route or the Socket Mode connection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.http import events_handler, on_bolt_error, on_rate_limited
from adapters.slack.listeners import SlackListeners
from adapters.slack.responder import SlackResponder
from adapters.slack.web import UserNames, web_client
from bot.config import Settings
from bot.core.port import CorePort

log = logging.getLogger(__name__)
# Bolt logs rejected bodies at INFO and copies the root level onto its loggers; this fixed level keeps
# message text out of the logs whatever LOG_LEVEL says.
_bolt_log = logging.getLogger(f"{__name__}.bolt")
_bolt_log.setLevel(logging.WARNING)

EVENTS_PATH = "/slack/events"


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
