"""The maintenance team's channel in Slack: a notice per change (a request scheduled or cancelled) with Mark in
progress / Mark done buttons, and those clicks, permission-checked by the core (Surfaces.mark)."""

from __future__ import annotations

import logging
from typing import Any, Final

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack import format as fmt
from adapters.slack.delivery import posted_with
from adapters.slack.door import Ephemeral, caller
from adapters.slack.identity import click_channel, installation
from adapters.slack.web import attempt, call
from bot.core.port import CorePort
from bot.errors import Undeliverable
from bot.types import Conversation, TeamNotice

log = logging.getLogger(__name__)

MARK_ACTIONS: Final = {"propbot_mark_in_progress": "in_progress", "propbot_mark_done": "completed"}
_ACTION_OF: Final = {status: action_id for action_id, status in MARK_ACTIONS.items()}
# The message metadata a notice carries, so a retried post can find the one an earlier attempt made.
NOTICE_EVENT: Final = "propbot_notice"
# Slack's answers that trying again cannot change.
_FOR_GOOD: Final = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "restricted_action",
        "team_access_not_granted",
    }
)
_LOOK_BACK: Final = 100  # messages of the channel's history searched for an earlier attempt's post


async def post_notice(client: AsyncWebClient, channel: str, notice: TeamNotice, delivery: str, again: bool) -> str:
    """Post the notice (exactly once in effect: `delivery` rides in the message's metadata, and a retry finds the
    post an earlier attempt made before posting); its ts. Raises Undeliverable when Slack refuses for good, and
    LookupError on a failure worth retrying."""
    if again and (ts := await _posted(client, channel, delivery)) is not None:
        return ts
    metadata = {"event_type": NOTICE_EVENT, "event_payload": {"delivery": delivery}}
    data, error = await attempt(client, "chat.postMessage", channel=channel, metadata=metadata, **notice_card(notice))
    if data is None:
        if error in _FOR_GOOD:
            raise Undeliverable(f"Slack refused the notice for {channel}: {error}")
        raise LookupError(f"Slack did not take the notice for {channel}: {error}")
    return str(data.get("ts") or "")


async def _posted(client: AsyncWebClient, channel: str, delivery: str) -> str | None:
    """The ts of the notice `delivery` already posted in the channel's recent history, if it is there. When the
    history cannot be read (no channels:history scope), None: the notice goes again (at least once)."""
    found = await posted_with(client, channel, None, NOTICE_EVENT, delivery, _LOOK_BACK)
    return (found or {}).get("")


def notice_card(notice: TeamNotice, note: str = "", by: str = "") -> dict[str, Any]:
    """The notice with its Mark buttons; `note` (plain words, escaped here) and `by` (the Slack user id of who
    marked it, shown as a mention) under it."""
    title, request_id = notice.title, notice.request_id
    parts: list[dict[str, Any]] = [blocks.header(f"Maintenance: {title}")]
    parts += blocks.field_sections([(d.label, d.value) for d in notice.fields])
    if note:
        parts.append(blocks.context(fmt.escape(note) + (f" (<@{by}>)" if by else "")))
    buttons = [(_ACTION_OF[new], label) for new, label in notice.marks.items() if new in _ACTION_OF]
    if buttons:
        parts.append(
            {
                "type": "actions",
                "block_id": "propbot_team",
                "elements": [
                    {"type": "button", "action_id": a, "text": {"type": "plain_text", "text": t}, "value": request_id}
                    for a, t in buttons
                ],
            }
        )
    return {"text": fmt.truncate(fmt.escape(f"Maintenance: {title}"), 300), "blocks": parts}


class TeamButtons:
    def __init__(self, core: CorePort, client: AsyncWebClient, ephemeral: Ephemeral) -> None:
        self.core = core
        self.client = client
        self.ephemeral = ephemeral

    def register(self, bolt: AsyncApp) -> None:
        for action_id in MARK_ACTIONS:
            bolt.action(action_id)(self.on_mark)

    async def on_mark(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        self.core.spawn(self.mark(body, action, context), name="slack:mark")

    async def mark(self, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext) -> None:
        user: dict[str, Any] = body.get("user") or {}
        user_id = str(user.get("id") or "")
        team = installation(context)
        channel = click_channel(body)
        ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
        request_id = action.get("value")
        if not (user_id and team and channel and isinstance(request_id, str) and len(request_id) <= 64):
            log.warning("ignored a maintenance button without a usable user, channel or request id")
            return
        where = Conversation(platform="slack", workspace=team, channel=channel)
        status = MARK_ACTIONS[str(action.get("action_id"))]
        marked = await self.core.surfaces.mark(caller(context), request_id, status, where)
        if marked.notice is None or not ts:
            await self.ephemeral(channel, user_id, marked.message, None)
            return
        card = notice_card(marked.notice, marked.message, by=user_id)
        await call(self.client, "chat.update", channel=channel, ts=ts, **card)
