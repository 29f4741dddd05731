"""A fake Bot Connector service on 127.0.0.1, used as the `serviceUrl` of test activities.

botbuilder posts the bot's replies here exactly as it would to Teams: send to a conversation, reply
to an activity, update an activity. Every call is recorded, and tests poll for them with a deadline
because replies are sent from background tasks after the HTTP request was acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

if TYPE_CHECKING:
    from tests.support.harness import Harness


@dataclass
class ConnectorCall:
    kind: str  # "send", "reply" or "update"
    conversation_id: str
    activity_id: str | None  # replied-to or updated activity
    body: dict[str, Any]
    authorization: str | None
    returned_id: str

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [
            a["content"]
            for a in self.body.get("attachments") or []
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"
        ]


# The roster `GET /v3/conversations/{id}/pagedmembers` answers: the people of the tests' permissions file.
MEMBERS = [
    {"id": "29:aad-manager", "name": "Mona Manager", "aadObjectId": "aad-manager"},
    {"id": "29:aad-staff", "name": "Sam Staff", "aadObjectId": "aad-staff"},
    {"id": "29:aad-viewer", "name": "Vic Viewer", "aadObjectId": "aad-viewer"},
]


@dataclass
class Stream:
    """A streamed answer as Teams tracks it (docs: "Stream bot messages", REST API)."""

    conversation: str
    sequence: int = 1
    texts: list[str] = field(default_factory=list)  # the streaming updates' texts, each the answer so far
    informative: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None


class FakeConnector:
    def __init__(self) -> None:
        self.calls: list[ConnectorCall] = []
        self.service_url = ""
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.members: list[dict[str, Any]] = list(MEMBERS)
        self.streams: dict[str, Stream] = {}
        # False: every stream is refused (403 ContentStreamNotAllowed), as for a bot or user streaming is off for.
        self.streaming_allowed = True
        self.violations: list[str] = []
        self.refused = 0  # stream activities answered with an error

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._reply)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._update)
        app.router.add_get("/v3/conversations/{conversation}/pagedmembers", self._paged_members)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.service_url = f"http://127.0.0.1:{port}/"
        return self.service_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _paged_members(self, request: web.Request) -> web.Response:
        return web.json_response({"members": self.members})

    def _stream_problem(self, body: dict[str, Any], conversation: str) -> tuple[int, str, str | None]:
        """(status, error code, stream id) for an activity carrying `streaminfo`; (0, "", id) when accepted."""
        info = next((e for e in body.get("entities") or [] if e.get("type") == "streaminfo"), None)
        if info is None:
            return 0, "", None
        kind, stream_id = info.get("streamType", "streaming"), info.get("streamId")
        sequence = info.get("streamSequence")
        if (body.get("conversation") or {}).get("conversationType") != "personal" or not self.streaming_allowed:
            return 403, "ContentStreamNotAllowed", None
        if kind == "final":
            stream = self.streams.get(str(stream_id))
            if body.get("type") != "message" or stream is None or sequence is not None or stream.final is not None:
                self.violations.append(f"bad final stream message {info}")
                return 400, "BadRequest", None
            stream.final = body
            return 0, "", str(stream_id)
        if body.get("type") != "typing" or not body.get("text"):
            self.violations.append(f"stream update without typing/text: {info}")
            return 400, "BadRequest", None
        if stream_id is None:
            if sequence != 1:
                self.violations.append(f"a stream must start at sequence 1: {info}")
                return 400, "BadRequest", None
            stream_id = f"stream-{next(self._ids)}"
            self.streams[stream_id] = stream = Stream(conversation)
        else:
            stream = self.streams.get(str(stream_id))
            if stream is None or stream.final is not None:
                return 403, "ContentStreamNotAllowed", None
            if sequence != stream.sequence + 1:
                self.violations.append(f"stream sequence {sequence} after {stream.sequence}")
                return 400, "BadRequest", None
            stream.sequence = sequence
        if kind == "informative":
            stream.informative.append(body["text"])
        else:
            if stream.texts and not body["text"].startswith(stream.texts[-1]):
                self.violations.append("a streaming update must hold the whole answer so far")
            stream.texts.append(body["text"])
        return 0, "", str(stream_id)

    def _suggestions_problem(self, body: dict[str, Any]) -> tuple[int, str]:
        """Suggested actions "aren't supported for chat bots with attachments for any conversation type"
        (Microsoft's suggested-actions page): Teams drops them, and in a channel shows the text as "Invalid
        message". Refused here, so an activity that carries both cannot go unnoticed."""
        actions = (body.get("suggestedActions") or {}).get("actions")
        if actions and body.get("attachments"):
            self.violations.append(f"suggested actions beside {len(body['attachments'])} attachment(s)")
            return 400, "BadRequest"
        return 0, ""

    async def _record(self, request: web.Request, kind: str) -> web.Response:
        body = await request.json()
        status, code = self._suggestions_problem(body)
        stream_id = None
        if not status:
            status, code, stream_id = self._stream_problem(body, request.match_info["conversation"])
        if status:
            self.refused += 1
            words = "Content stream is not allowed" if code == "ContentStreamNotAllowed" else "Bad request"
            error = {"code": code, "message": words}
            return web.json_response({"error": error}, status=status)
        returned = body.get("id") if kind == "update" else stream_id or f"bot-activity-{next(self._ids)}"
        self.calls.append(
            ConnectorCall(
                kind=kind,
                conversation_id=request.match_info["conversation"],
                activity_id=request.match_info.get("activity"),
                body=body,
                authorization=request.headers.get("Authorization"),
                returned_id=str(returned or request.match_info["activity"]),
            )
        )
        return web.json_response({"id": self.calls[-1].returned_id})

    async def _send(self, request: web.Request) -> web.Response:
        return await self._record(request, "send")

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._record(request, "reply")

    async def _update(self, request: web.Request) -> web.Response:
        return await self._record(request, "update")

    # -- what the bot sent ------------------------------------------------------------------------
    def messages(self) -> list[ConnectorCall]:
        """Posted messages (sends and replies), without typing indicators and updates."""
        return [c for c in self.calls if c.kind != "update" and c.type == "message"]

    def typing(self) -> list[ConnectorCall]:
        return [c for c in self.calls if c.type == "typing"]

    def updates(self) -> list[ConnectorCall]:
        return [c for c in self.calls if c.kind == "update"]

    async def wait_for(
        self, what: Callable[[], list[ConnectorCall]], count: int = 1, within: float = 10.0
    ) -> list[ConnectorCall]:
        """Poll until `what()` holds at least `count` calls; fail the test with what was seen if not."""
        deadline = time.monotonic() + within
        while len(found := what()) < count:
            if time.monotonic() > deadline:
                seen = [(c.kind, c.type, c.conversation_id) for c in self.calls]
                raise AssertionError(f"expected {count} call(s) within {within}s; the connector saw {seen}")
            await asyncio.sleep(0.02)
        return found


@pytest.fixture
async def fake_connector(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeConnector]:
    # botframework-connector sends with `requests`, which honours proxy variables; loopback must bypass.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    fake = FakeConnector()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


# -- the Teams side: activities as the Bot Framework channel would send them -----------------------

BOT_ID = "28:propbot-bot"
TENANT = "tenant-1"
_activity_ids = itertools.count(1000)


def activity_id() -> str:
    return str(next(_activity_ids))


def message(
    connector: FakeConnector,
    text: str,
    *,
    user: str = "aad-manager",
    name: str = "Mona Manager",
    conversation: str = "a:personal-chat-1",
    conversation_type: str = "personal",
    mention: bool = False,
    value: dict[str, Any] | None = None,
    reply_to: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "message",
        "id": id or activity_id(),
        "channelId": "msteams",
        "serviceUrl": connector.service_url,
        "from": {"id": f"29:{user}", "aadObjectId": user, "name": name},
        "recipient": {"id": BOT_ID, "name": "propbot"},
        "conversation": {"id": conversation, "conversationType": conversation_type, "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
        "text": f"<at>propbot</at> {text}" if mention else text,
    }
    if mention:
        body["entities"] = [
            {"type": "mention", "text": "<at>propbot</at>", "mentioned": {"id": BOT_ID, "name": "propbot"}}
        ]
    if value is not None:
        body["value"] = value
    if reply_to is not None:
        body["replyToId"] = reply_to
    return body


def execute(
    connector: FakeConnector,
    verb: str,
    approval_id: str,
    *,
    card_id: str,
    user: str = "aad-manager",
    name: str = "Mona Manager",
    conversation: str = "a:personal-chat-1",
) -> dict[str, Any]:
    """The invoke Teams sends when an Action.Execute button is clicked."""
    body = message(connector, "", user=user, name=name, conversation=conversation, reply_to=card_id)
    del body["text"]
    body.update(
        type="invoke",
        name="adaptiveCard/action",
        value={"action": {"type": "Action.Execute", "verb": verb, "data": {"approval_id": approval_id}}},
    )
    return body


@dataclass
class TeamsRig:
    url: str
    harness: Harness
    connector: FakeConnector
    session: aiohttp.ClientSession
    app: web.Application

    async def idle(self) -> None:
        """Until no turn is queued or running and no background task is left: then "nothing more happened" holds."""
        from bot.app.server import DISPATCHER
        from tests.support.state import settle

        await settle(self.harness.settings.redis_url or "", self.app[DISPATCHER].tasks)

    async def post(
        self, payload: dict[str, Any] | str | bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST to /api/messages; returns the status and the JSON body (None when there is none)."""
        data = payload if isinstance(payload, str | bytes) else None
        json_body = None if data is not None else payload
        sent = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.post(self.url, data=data, json=json_body, headers=sent) as response:
            raw = await response.read()
            ctype = response.headers.get("Content-Type", "")
            return response.status, (await response.json() if raw and "json" in ctype else None)


StartTeams = Callable[..., Awaitable[TeamsRig]]


@pytest.fixture
async def start_teams(make_harness: Any, fake_connector: FakeConnector) -> AsyncIterator[StartTeams]:
    """Start the real propbot app (Teams mounted) on 127.0.0.1; keyword arguments override settings."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    # Imported here so that loading this plugin does not import botbuilder or the server for every test.
    from adapters.teams.auth import AUTH_TIMEOUT
    from adapters.teams.inbound import INVOKE_WAIT
    from bot.app.platforms import teams_mount
    from bot.app.server import create_app

    async def start(
        invoke_wait: float = INVOKE_WAIT, bind: str = "127.0.0.1", auth_timeout: float = AUTH_TIMEOUT, **overrides: Any
    ) -> TeamsRig:
        """`bind`: the address served (0.0.0.0 lets a test reach it from a non-loopback address too)."""
        h: Harness = await make_harness(**{"teams_local_mode": True, **overrides})
        mount = teams_mount(h.settings, invoke_wait=invoke_wait, auth_timeout=auth_timeout)
        app = await create_app(h.process, mounts=[mount], sweep_interval=3600)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, bind, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        session = aiohttp.ClientSession()
        sessions.append(session)
        return TeamsRig(f"http://127.0.0.1:{port}/api/messages", h, fake_connector, session, app)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()
