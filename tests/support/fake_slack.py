"""A fake Slack Web API on 127.0.0.1 for the real slack_sdk client, and Slack's side of the Events API.

`FakeSlack` answers the methods propbot uses, records every call, checks messages against Slack's Block
Kit limits (recording violations), keeps message and reaction state, and can answer one call of a
method with an error (e.g. 429 + Retry-After). `sign()` signs a request body the way Slack does.
The `slack_bots` fixture runs propbot's real aiohttp app with the Slack mount against these fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app.platforms import slack_mount
from bot.app.runtime import Runtime
from bot.app.server import DISPATCHER, create_app
from bot.core.permissions import parse_permissions
from bot.ingress.dispatch import Dispatcher
from bot.observability.audit import AuditSink
from tests.support.block_kit import check_message
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack_ai import AISurfaces, keep_metadata, new_ts
from tests.support.fake_slack_directory import Directory
from tests.support.fake_slack_files import FileUploads
from tests.support.harness import PERMISSIONS_YAML, start_process, test_settings
from tests.support.state import settle
from tools import builtin_tools
from tools.db import Database

registry = builtin_tools()

BOT_TOKEN = "xoxb-test-0000-slack-bot-token-do-not-log"
APP_TOKEN = "xapp-1-test-0000-slack-app-token-do-not-log"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEAM = "T1"
BOT_USER = "UBOT"
BOT_ID = "BBOT"

_ts = itertools.count(1)
_events = itertools.count(1)


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    authorized: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class Injected:
    status: int
    error: str
    headers: dict[str, str]
    # A body that is not Slack's JSON (a proxy's text/plain 403, a load balancer's HTML 502).
    raw: str | None = None
    content_type: str = "application/json"


class FakeSlack(AISurfaces, FileUploads, Directory):
    def __init__(self, token: str = BOT_TOKEN) -> None:
        Directory.__init__(self)
        self.token = token
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.users: dict[str, str] = {"UMANAGER": "Maria Manager", "UMANAGER2": "Max Manager", "USTAFF": "Sam Staff"}
        # The Enterprise Grid org users.info names for a user (`enterprise_user.enterprise_id`).
        self.orgs: dict[str, str] = {}
        # A user's own workspace, as users.info names it (`team_id`); TEAM unless set.
        self.teams: dict[str, str] = {}
        # A user's time zone, as users.info names it (`tz`); left out unless set, as for a profile without one.
        self.zones: dict[str, str] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.reactions: set[tuple[str, str, str]] = set()
        self.injected: dict[str, list[Injected]] = {}
        self.base_url = ""
        # Where apps.connections.open sends Socket Mode clients (a FakeSocketMode server), when one runs.
        self.socket_url: str | None = None
        # Set for a workspace inside an Enterprise Grid org: auth.test then names the org too.
        self.enterprise_id: str | None = None
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        # Off (the default here): chat.startStream answers `unknown_method`, as for a workspace or app without
        # streaming, and propbot posts whole messages: the subject of the tests of replies and cards. The
        # streaming tests turn it on.
        self.streaming = False
        self.deleted: list[tuple[str, str]] = []
        self.statuses: list[tuple[str, str, str]] = []  # assistant.threads.setStatus: channel, thread, status
        self.homes: dict[str, dict[str, Any]] = {}  # the App Home view last published per user
        self.modals: list[dict[str, Any]] = []
        # Awaited while a call of the method is being answered: "before" Slack acts on it (the request hangs, as
        # on a stalled connection), or "after" (it took effect; the answer has not left): where a test kills the
        # process that made it.
        self.holds: dict[str, tuple[str, Callable[[Call], Awaitable[None]]]] = {}

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self.upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/api/"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(
        self, method: str, status: int = 429, retry_after: int | None = 1, error: str = "ratelimited"
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.injected.setdefault(method, []).append(Injected(status, error, headers))

    def fail_next_raw(self, method: str, status: int, body: str, content_type: str) -> None:
        self.injected.setdefault(method, []).append(Injected(status, "", {}, body, content_type))

    def replies(self, channel: str) -> list[dict[str, Any]]:
        """The bot's messages in a channel, posted or streamed, oldest first (cards included)."""
        return [m for (c, _), m in sorted(self.messages.items(), key=lambda kv: kv[0][1]) if c == channel]

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self, method: str, count: int = 1, within: float = 15.0, where: Callable[[Call], bool] | None = None
    ) -> list[Call]:
        """Until at least `count` matching calls were made; fails the test after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = [c for c in self.calls_to(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"expected {count} {method} call(s) within {within}s, got {len(found)}: {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(dict(await request.post()))
        # Socket Mode opens its connection with the app-level token; every other method takes the bot token.
        token = APP_TOKEN if method == "apps.connections.open" else self.token
        authorized = request.headers.get("Authorization") == f"Bearer {token}"
        self.calls.append(Call(method, args, authorized))
        self._changed.set()
        if not authorized:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        queue = self.injected.get(method)
        if queue:
            fault = queue.pop(0)
            if fault.raw is not None:
                return web.Response(status=fault.status, text=fault.raw, content_type=fault.content_type)
            return web.json_response({"ok": False, "error": fault.error}, status=fault.status, headers=fault.headers)
        if "link_names" in args:
            self.violations.append(f"{method}: link_names was set")
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        when, hold = self.holds.get(method, ("", None))
        if hold is not None and when == "before":
            await hold(self.calls[-1])
        body: dict[str, Any] = handler(args)
        if hold is not None and when == "after":
            await hold(self.calls[-1])
        return web.json_response(body)

    # -- methods ---------------------------------------------------------------------------------
    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "team_id": TEAM,
            "user": "propbot",
            "team": "Test",
            "enterprise_id": self.enterprise_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": self.socket_url}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user"))
        name, org = self.users.get(user), self.orgs.get(user)
        if name is None and org is None and user not in self.teams:
            return {"ok": False, "error": "user_not_found"}
        name = name or user.title()
        info: dict[str, Any] = {
            "id": user,
            "team_id": self.teams.get(user, TEAM),
            "name": name.split()[0].lower(),
            "real_name": name,
            "profile": self.profile_of(user),
        }
        if user in self.zones:
            info["tz"] = self.zones[user]
        if org is not None:
            info["enterprise_user"] = {"id": user, "enterprise_id": org, "enterprise_name": org, "teams": []}
        return {"ok": True, "user": info}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        problems = check_message(args)
        if problems:
            self.violations.extend(f"chat.postMessage: {p}" for p in problems)
            return {"ok": False, "error": "invalid_blocks"}
        ts = new_ts()
        message = {"ts": ts, "bot_id": BOT_ID, "text": args.get("text"), "blocks": args.get("blocks", [])}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        keep_metadata(message, args)
        self.messages[(str(args["channel"]), ts)] = message
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The channel's top-level messages, newest first; `metadata` only with include_all_metadata (as Slack)."""
        found = [m for m in reversed(self.replies(str(args.get("channel")))) if not m.get("thread_ts")]
        return self._page(found, args)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent then its replies, oldest first."""
        thread = str(args.get("ts"))
        found = [
            m for m in self.replies(str(args.get("channel"))) if m.get("ts") == thread or m.get("thread_ts") == thread
        ]
        return self._page(found, args)

    @staticmethod
    def _page(found: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = int(args.get("limit") or 100)
        messages = [
            {"type": "message", **{k: v for k, v in m.items() if k != "metadata" or with_metadata}}
            for m in found[:limit]
        ]
        return {
            "ok": True,
            "messages": messages,
            "has_more": len(found) > limit,
            "response_metadata": {"next_cursor": ""},
        }

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        problems = check_message(args)
        if problems:
            self.violations.extend(f"chat.update: {p}" for p in problems)
            return {"ok": False, "error": "invalid_blocks"}
        self.messages[key].update(text=args.get("text"), blocks=args.get("blocks", []))
        keep_metadata(self.messages[key], args)
        return {"ok": True, "channel": key[0], "ts": key[1], "text": args.get("text")}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if self.messages.pop(key, None) is None:
            return {"ok": False, "error": "message_not_found"}
        self.deleted.append(key)
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user") or not args.get("channel"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "message_ts": f"{1_700_000_000 + next(_ts)}.000200"}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("timestamp")), str(args.get("name")))
        if key in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.add(key)
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("timestamp")), str(args.get("name")))
        if key not in self.reactions:
            return {"ok": False, "error": "no_reaction"}
        self.reactions.discard(key)
        return {"ok": True}


# -- Slack's side of the Events API ---------------------------------------------------------------------


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "unused",
        "team_id": TEAM,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_events):08d}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def message_ts() -> str:
    return f"{1_600_000_000 + next(_ts)}.000300"


def mention(user: str, text: str, channel: str = "C1", thread_ts: str | None = None) -> dict[str, Any]:
    event = {"type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "ts": message_ts()}
    event.update(channel=channel, team=TEAM, **({"thread_ts": thread_ts} if thread_ts else {}))
    return event


def direct_message(user: str, text: str, channel: str = "D1", **extra: Any) -> dict[str, Any]:
    event = {"type": "message", "channel_type": "im", "channel": channel, "user": user, "text": text}
    return {**event, "ts": message_ts(), "team": TEAM, **extra}


def click(user: str, action_id: str, value: str, channel: str, message_ts: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "general"},
        "message": {"ts": message_ts, "type": "message", "bot_id": BOT_ID},
        "response_url": "https://hooks.invalid/unused",
        "trigger_id": "1.2.3",
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "propbot_decision", "value": value, "action_ts": "1"}
        ],
    }


@dataclass
class Sent:
    status: int
    seconds: float
    body: str


async def post_to(
    session: aiohttp.ClientSession, url: str, body: str, content_type: str, headers: dict[str, str]
) -> Sent:
    started = time.perf_counter()
    async with session.post(url, data=body.encode(), headers={"Content-Type": content_type, **headers}) as resp:
        text = await resp.text()
        return Sent(resp.status, time.perf_counter() - started, text)


@dataclass
class SlackBot:
    """propbot's real aiohttp app (Slack mounted) served on 127.0.0.1, and a signed-request client."""

    runtime: Runtime
    dispatcher: Dispatcher
    url: str
    slack: FakeSlack
    session: aiohttp.ClientSession
    app: web.Application | None = None

    async def idle(self) -> None:
        """Until no turn is queued or running and no background task is left: then "nothing more happened" holds."""
        await settle(self.runtime.settings.redis_url or "", self.dispatcher.tasks)

    async def send_event(self, event: dict[str, Any], event_id: str | None = None, **kw: Any) -> Sent:
        return await self.send_json(event_body(event, event_id), **kw)

    async def send_json(self, payload: dict[str, Any], **kw: Any) -> Sent:
        return await self.send_raw(json.dumps(payload), "application/json", **kw)

    async def send_click(self, payload: dict[str, Any], url: str | None = None, **kw: Any) -> Sent:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.send_raw(body, "application/x-www-form-urlencoded", url=url, **kw)

    async def send_raw(
        self,
        body: str,
        content_type: str,
        url: str | None = None,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent:
        signed = {**sign(body, secret, timestamp), **(headers or {})}
        return await post_to(self.session, (url or self.url) + "/slack/events", body, content_type, signed)


MakeSlackBot = Callable[..., Awaitable[SlackBot]]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def slack_bots(fake_openai: FakeOpenAI, fake_slack: FakeSlack, redis_url: str) -> AsyncIterator[MakeSlackBot]:
    """`await slack_bots(db, **settings)`: a served propbot with Slack, on the suite's Redis and `db`."""
    servers: list[TestServer] = []
    session = aiohttp.ClientSession()

    async def make(
        db: Database,
        *,
        permissions: str = PERMISSIONS_YAML,
        every_mount: bool = False,
        audit: AuditSink | None = None,
        **overrides: Any,
    ) -> SlackBot:
        """`every_mount`: mount what the settings enable (as `propbot serve` does), not Slack alone."""
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": fake_slack.base_url,
        }
        settings = test_settings(fake_openai, **{**values, **overrides})
        rules = parse_permissions(permissions, allow_self_approval=settings.allow_self_approval)
        runtime = start_process(settings, rules, db, audit=audit)
        app = await create_app(runtime, mounts=None if every_mount else [slack_mount(settings)], drain_timeout=15.0)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        url = str(server.make_url("")).rstrip("/")
        return SlackBot(runtime, app[DISPATCHER], url, fake_slack, session, app)

    yield make
    for server in servers:
        await server.close()
    await session.close()
