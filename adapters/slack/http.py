"""Slack's way in over HTTP: `POST /slack/events` into Bolt, and what Bolt answers for payloads it cannot use.

Translation, as in slack-bolt's own aiohttp adapter, plus the answers Bolt leaves to the app: a body it
cannot route is the sender's mistake (4xx naming why), a message the store could not accept is Slack's cue
to deliver it again (503). The listeners that make sense of a payload are in `adapters.slack.listeners`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)


async def to_bolt_request(request: web.Request) -> AsyncBoltRequest:
    headers: dict[str, str | Sequence[str]] = {key: request.headers.getall(key) for key in request.headers}
    return AsyncBoltRequest(body=await request.text(), query=request.query_string, headers=headers)


def to_aiohttp_response(response: BoltResponse) -> web.Response:
    headers = response.first_headers_without_set_cookie()
    content_type = headers.pop("content-type", "text/plain").split(";")[0]
    return web.Response(status=response.status, text=response.body, content_type=content_type, headers=headers)


def _refused(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def on_bolt_error(error: Exception) -> BoltResponse:
    """Bolt's error handler, for anything raised while it routes a verified body or a listener runs.

    Bolt reads Slack's shapes without checking them, so a body it cannot route raises somewhere inside; that
    is answered 400 with the reason, rather than guessing every shape in advance. `StoreUnavailable` is the
    one deliberate raise (the message was not accepted): 503 makes Slack deliver it again."""
    if isinstance(error, StoreUnavailable):
        return BoltResponse(status=503, body={"error": "temporarily unavailable"})
    if isinstance(error, BoltUnhandledRequestError):
        # A verified payload of a kind propbot never asked for (a shortcut, a slash command): one line, not
        # Bolt's warning with code suggestions.
        body = error.body if isinstance(error.body, dict) else {}
        kind = repr(str(body.get("type") or body.get("command") or "untyped")[:40])
        log.info("refused a Slack %s request: propbot does not handle it", kind)
        return BoltResponse(status=404, body={"error": f"unhandled request: propbot does not handle {kind} payloads"})
    # The class only: an exception's text can quote the body, and the body holds people's messages.
    log.warning("refused a Slack request that could not be handled (%s)", type(error).__name__)
    return BoltResponse(status=400, body={"error": f"malformed body: {type(error).__name__}"})


async def on_rate_limited(body: dict[str, Any], next_: Callable[[], Awaitable[None]]) -> BoltResponse | None:
    """Slack's notice that it drops this app's events (over 30,000 an hour from one workspace).

    It is an envelope of its own, not an event, so no listener would match it and Bolt would answer 404; Slack
    counts every answer but 200 against the app and disables subscriptions that fail too often."""
    if body.get("type") != "app_rate_limited":
        await next_()
        return None
    log.warning(
        "Slack is dropping events for propbot: rate-limited since minute %s (over 30,000 events an hour)",
        body.get("minute_rate_limited"),
    )
    return BoltResponse(status=200, body="")


def events_handler(bolt: AsyncApp) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            # Bolt parses and reads ids out of the body while building the request, before any check.
            bolt_request = await to_bolt_request(request)
            if not isinstance(bolt_request.body, dict):
                raise TypeError("not a JSON object")
        except (ValueError, AttributeError, TypeError, KeyError) as exc:
            log.warning("rejected a Slack request with a malformed body (%s)", type(exc).__name__)
            return _refused(f"malformed body: {type(exc).__name__}")
        try:
            response = await bolt.async_dispatch(bolt_request)
        except Exception as exc:  # raised outside Bolt's own error handling (context set-up)
            log.warning("rejected a Slack request with a malformed body (%s)", type(exc).__name__)
            return _refused(f"malformed body: {type(exc).__name__}")
        if response.status == 401:
            log.warning("rejected a Slack request with a missing, invalid or expired signature")
        return to_aiohttp_response(response)

    return handle
