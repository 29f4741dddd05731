"""The floor: a bare slack-bolt AsyncApp that answers every mention with "ok" through the same fakes.

`python -m bench.bare_bolt`, configured like propbot (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
SLACK_API_URL, PORT) and served on aiohttp the same way (AppRunner, no access log), so the difference
between the two is propbot's own work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.say.async_say import AsyncSay
from slack_sdk.web.async_client import AsyncWebClient


def build() -> web.Application:
    token = os.environ["SLACK_BOT_TOKEN"]
    client = AsyncWebClient(token=token, base_url=os.environ["SLACK_API_URL"])
    bolt = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @bolt.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        await say(text="ok", thread_ts=event["ts"])

    return web_app(bolt)


def web_app(bolt: AsyncApp) -> web.Application:
    """The Bolt app on POST /slack/events, with the GET /healthz the bench waits for."""
    app = bolt.web_app(path="/slack/events")

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    return app


async def main() -> None:
    await serve(build())


async def serve(app: web.Application) -> None:
    """Serve `app` on 127.0.0.1:$PORT until SIGTERM / SIGINT, as propbot serves (AppRunner, no access log)."""
    logging.basicConfig(level=logging.WARNING)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
