"""Socket Mode: the same Bolt app, fed over a WebSocket Slack opens for us instead of HTTP.

For hosts Slack cannot reach (a laptop, a private network). Needs an app-level token (`xapp-...`)
with the `connections:write` scope and Socket Mode switched on in the app's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp

log = logging.getLogger(__name__)


def socket_mode(app: web.Application, bolt: AsyncApp, app_token: str) -> Callable[[], Awaitable[None]]:
    """Connect when the server starts; returns the cleanup that closes the connection."""
    handler = AsyncSocketModeHandler(bolt, app_token=app_token, web_client=bolt.client)

    async def connect(_: web.Application) -> None:
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
        except Exception as exc:
            # The rest of the server (health, Teams) keeps running; the log says what to fix.
            log.error(
                "Slack Socket Mode could not connect (%s): check SLACK_APP_TOKEN (xapp-..., scope "
                "connections:write) and that Socket Mode is enabled for the app",
                type(exc).__name__,
            )
            return
        log.info("Slack Socket Mode connected")

    async def close() -> None:
        await handler.close_async()  # type: ignore[no-untyped-call]

    app.on_startup.append(connect)
    return close
