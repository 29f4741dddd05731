"""The one door of every Slack payload: a Bolt middleware that runs before any listener (events, buttons, forms,
search boxes, shortcuts, assistant events, the ones added later too), reads who is asking and asks the core's
gate whether they are let in. Someone it refuses reaches no listener; what they may then use, decide or see is
the core's to answer on every later call."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.identity import click_channel, clicker_team, installation, user_principal
from adapters.slack.web import UserNames, call
from bot.core.port import CorePort
from bot.types import Caller

log = logging.getLogger(__name__)

CALLER: Final = "propbot_caller"  # where the door leaves the Caller for the listeners, in Bolt's context
REFUSED: Final = "You are not allowed to use propbot in this workspace; nothing was changed."
# Payloads a person sends by clicking or typing in something propbot showed them.
_INTERACTIONS: Final = frozenset(
    {"block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut", "message_action"}
)
# The kinds of payload propbot's listeners take; a refused one of these is answered as handled (200).
_ANSWERED: Final = frozenset({"event_callback", "block_actions", "block_suggestion", "view_submission"})


def event_author(event: dict[str, Any]) -> str | None:
    """The person an event is about: its author, or the person an assistant thread or a Home tab belongs to."""
    thread = event.get("assistant_thread")
    user = thread.get("user_id") if isinstance(thread, dict) else event.get("user")
    return user if isinstance(user, str) and user else None


async def caller_of(body: dict[str, Any], context: AsyncBoltContext, names: UserNames) -> Caller | None:
    """Who is asking, from any payload Slack sends: `slack:<their own team>:<user>` and the installation it came
    through; None for a payload no person sent (a bot's message, an app event)."""
    workspace = installation(context)
    if body.get("type") == "event_callback":
        event = _mapping(body.get("event"))
        user = event_author(event)
        if user is None or event.get("bot_id") or event.get("bot_profile") is not None:
            return None
        team = event.get("user_team") or event.get("team")
        if not team:
            # Home tab and assistant events name no team for the person: Slack's profile of them does. Without
            # it, a person in a channel shared with another organisation gets no team (let in nowhere); anyone
            # else is this workspace's.
            team = await names.team(user)
        if not team and body.get("is_ext_shared_channel") is not True:
            team = workspace
        return Caller(platform="slack", workspace=workspace, user=user_principal(user, team, context))
    if body.get("type") in _INTERACTIONS:
        person = _mapping(body.get("user"))
        user_id = person.get("id")
        if not (isinstance(user_id, str) and user_id):
            return None
        return Caller(platform="slack", workspace=workspace, user=user_principal(user_id, clicker_team(body), context))
    return None


def caller(context: AsyncBoltContext) -> Caller:
    """The Caller the door let in, for a listener (the door ran before it, on every payload)."""
    found = context.get(CALLER)
    if not isinstance(found, Caller):
        raise LookupError("the Slack door did not run before this listener")
    return found


class SlackDirectory:
    """What Slack says about people, for the gate: the Enterprise Grid org of a person (users.info) and of this
    installation (auth.test, asked once)."""

    def __init__(self, client: AsyncWebClient, names: UserNames) -> None:
        self.client = client
        self.names = names
        self._home: list[str] | None = None

    async def orgs_of(self, user_id: str) -> list[str]:
        org = await self.names.org(user_id)
        return [org] if org else []

    async def home_orgs(self, workspace: str) -> list[str]:
        if self._home is None:
            data = await call(self.client, "auth.test")
            if data is None:
                return []  # asked again next time: an outage must not be remembered as "no org"
            org = data.get("enterprise_id")
            self._home = [org] if isinstance(org, str) and org else []
        return self._home


Ephemeral = Callable[[str, str, str, str | None], Awaitable[None]]  # channel, user, text, thread


class SlackDoor:
    def __init__(self, core: CorePort, names: UserNames, ephemeral: Ephemeral) -> None:
        self.core = core
        self.names = names
        self.ephemeral = ephemeral

    async def check(
        self, body: dict[str, Any], context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        asking = await caller_of(body, context, self.names)
        if asking is not None and await self.core.admit(asking):
            context[CALLER] = asking
            await next_()
            return None
        if asking is None and body.get("type") == "event_callback":
            # Bot messages, app events: no person to let in; the listeners that log why they ignore them run.
            await next_()
            return None
        kind = body.get("type")
        if asking is None:
            # A click, form or shortcut that names nobody: there is no one to let in, and nothing to do.
            named = repr(str(kind or "untyped")[:40])
            log.info("refused a Slack %s request without a user", named)
            error = f"unhandled request: propbot does not handle {named} payloads without a user"
            return BoltResponse(status=400, body={"error": error})
        log.info("refused a Slack %s: %s is not let in", kind, asking.user)
        if kind not in _ANSWERED:
            # A kind no listener takes (a shortcut): answered as Bolt's unhandled path would, whoever sent it.
            error = f"unhandled request: propbot does not handle {str(kind)[:40]!r} payloads"
            return BoltResponse(status=404, body={"error": error})
        if kind == "block_actions" and (channel := click_channel(body)):
            thread = _mapping(body.get("message")).get("thread_ts")
            self.core.spawn(self._tell(channel, asking, thread if isinstance(thread, str) else None), "slack:refused")
        if kind == "block_suggestion":
            return BoltResponse(
                status=200, body=json.dumps({"options": []}), headers={"content-type": "application/json"}
            )
        return BoltResponse(status=200, body="")

    async def _tell(self, channel: str, asking: Caller, thread: str | None) -> None:
        await self.ephemeral(channel, asking.user.rsplit(":", 1)[-1], REFUSED, thread)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
