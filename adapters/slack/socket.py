"""Socket Mode: the same Bolt app, fed over a WebSocket Slack opens for us instead of HTTP.

For hosts Slack cannot reach (a laptop, a private network). Needs an app-level token (`xapp-...`)
with the `connections:write` scope and Socket Mode switched on in the app's settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp

log = logging.getLogger(__name__)


def socket_mode(app: web.Application, bolt: AsyncApp, app_token: str) -> Callable[[], Awaitable[None]]:
    """Connect in the background once the server starts; returns the cleanup that closes the connection."""
    handler = AsyncSocketModeHandler(bolt, app_token=app_token, web_client=bolt.client)
    running: list[asyncio.Task[None]] = []

    async def connect() -> None:
        # slack_sdk retries a failed connect forever (logging each failure), so this must not hold up
        # the server's start: /healthz and Teams keep working while Slack is unreachable.
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack Socket Mode connected")

    async def start(_: web.Application) -> None:
        log.info(
            "Slack Socket Mode connecting; if it keeps failing, check SLACK_APP_TOKEN (xapp-..., scope "
            "connections:write) and that Socket Mode is enabled for the app"
        )
        running.append(asyncio.create_task(connect(), name="slack:socket-mode"))

    async def close() -> None:
        await handler.close_async()  # type: ignore[no-untyped-call]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    app.on_startup.append(start)
    return close
