"""The maintenance team's channel in Slack: a notice per change (a request scheduled or cancelled) with Mark in
progress / Mark done buttons, and those clicks, permission-checked by the core (Surfaces.mark)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack import format as fmt
from adapters.slack.identity import click_channel, clicker_team, installation, user_principal
from adapters.slack.web import call
from bot.core.port import CorePort
from bot.types import Conversation, Detail
from tools.maintenance_team import MARKS, marks_from

log = logging.getLogger(__name__)

MARK_ACTIONS: Final = {"propbot_mark_in_progress": "in_progress", "propbot_mark_done": "completed"}
_ACTION_OF: Final = {status: action_id for action_id, status in MARK_ACTIONS.items()}


def notice_card(title: str, fields: list[Detail], status: str, request_id: str, note: str = "") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [blocks.header(f"Maintenance: {title}")]
    parts += blocks.field_sections([(d.label, d.value) for d in fields])
    if note:
        parts.append(blocks.context(fmt.escape(note)))
    buttons = [(_ACTION_OF[new], MARKS[new]) for new in marks_from(status)]
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


Ephemeral = Callable[[str, str, str, str | None], Awaitable[None]]  # channel, user, text, thread


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
        principal = user_principal(user_id, clicker_team(body), context)
        where = Conversation(platform="slack", workspace=team, channel=channel)
        status = MARK_ACTIONS[str(action.get("action_id"))]
        result, message = await self.core.surfaces.mark(principal, request_id, status, where)
        if result is None or not result.ok or result.presentation is None or not ts:
            await self.ephemeral(channel, user_id, message, None)
            return
        shown = result.presentation
        new_status = str((result.data or {}).get("status") or status)
        note = f"{message} (<@{user_id}>)"
        card = notice_card(shown.title, shown.fields, new_status, request_id, note)
        await call(self.client, "chat.update", channel=channel, ts=ts, **card)
