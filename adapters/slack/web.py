"""The Slack Web API client propbot uses, one call wrapper that logs and never raises, and display names."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.config import SlackConfig

log = logging.getLogger(__name__)
# slack_sdk logs request bodies at DEBUG; this fixed level keeps message text out of the logs whatever
# LOG_LEVEL says.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.INFO)

NAME_TTL = 3600.0
NAME_BUDGET = 1.5  # seconds a users.info lookup may hold up the ack before we go without a name


def web_client(config: SlackConfig, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """The Web API client; slack_sdk retries nothing but connection resets unless told to."""
    return AsyncWebClient(
        token=config.bot_token,
        base_url=config.api_url,
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
    return (await attempt(client, method, **params))[0]


async def attempt(client: AsyncWebClient, method: str, **params: Any) -> tuple[dict[str, Any] | None, str]:
    """One Web API call: (its data, "") or (None, Slack's error code or the failure's kind), logged."""
    try:
        response = await getattr(client, method.replace(".", "_"))(**params)
    except SlackApiError as exc:
        error = _api_error(exc.response)
        log.warning("slack %s failed: %s", method, error)
        return None, error
    except (SlackClientError, aiohttp.ClientError, TimeoutError, AttributeError, ValueError) as exc:
        # AttributeError/ValueError: slack_sdk's own response check calls `.get` on the body, which is a str
        # when a proxy answers text/plain (a 403 page) instead of Slack's JSON. The exception text can
        # carry the request URL but never the token (it travels in a header).
        log.warning("slack %s failed: %s", method, type(exc).__name__)
        return None, type(exc).__name__
    data: dict[str, Any] = response.data if isinstance(response.data, dict) else {}
    return data, ""


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
        self._cache: dict[str, tuple[float, str | None, str | None, str | None, str | None]] = {}

    async def _lookup(self, user: str) -> tuple[str | None, str | None, str | None, str | None]:
        """(display name, Grid org, own team, time zone) of a user, each None when Slack does not say."""
        hit = self._cache.get(user)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2], hit[3], hit[4]
        data = await call(self.client, "users.info", user=user)
        info: dict[str, Any] = (data or {}).get("user") or {}
        profile: dict[str, Any] = info.get("profile") or {}
        name = profile.get("display_name") or info.get("real_name") or info.get("name") or None
        org = (info.get("enterprise_user") or {}).get("enterprise_id")
        team = info.get("team_id")
        zone = info.get("tz")
        found = (
            name if isinstance(name, str) else None,
            org if isinstance(org, str) and org else None,
            team if isinstance(team, str) and team else None,
            zone if isinstance(zone, str) and zone else None,
        )
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

    async def zone(self, user: str) -> str | None:
        """The user's time zone as their Slack profile says (`tz`, an IANA name), from the same cached look-up."""
        try:
            return (await asyncio.wait_for(self._lookup(user), NAME_BUDGET))[3]
        except TimeoutError:
            return None

    async def team(self, user: str) -> str | None:
        """The user's own workspace as Slack's profile says (`team_id`), for payloads that do not name it."""
        try:
            return (await asyncio.wait_for(self._lookup(user), NAME_BUDGET))[2]
        except TimeoutError:
            return None
