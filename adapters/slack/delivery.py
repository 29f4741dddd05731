"""A turn's answer in Slack, exactly once in effect: every message of it carries its delivery id (the turn's event id)
and its part (`<reply>.<message>`) in Slack's message metadata. When a turn's replies go out again because the
process that sent them stopped before recording it, the thread is read first and the parts already there are not
posted again, so nobody gets a copy and nobody needs the "this is a copy" note."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.web import call
from bot.types import Conversation

REPLY_EVENT: Final = "propbot_reply"
_LOOK_BACK: Final = 200  # messages read: a thread, or the recent history of a DM


@dataclass
class AnswerTags:
    delivery: str
    posted: dict[str, str] = field(default_factory=dict)  # on a repeat: part -> ts of what is already there

    def metadata(self, part: str) -> dict[str, Any]:
        return {"event_type": REPLY_EVENT, "event_payload": {"delivery": self.delivery, "part": part}}


def part(reply: int, message: int) -> str:
    return f"{reply}.{message}"


async def find_posted(client: AsyncWebClient, conversation: Conversation, delivery: str) -> dict[str, str] | None:
    """The parts of `delivery`'s answer already in the conversation (part -> ts), or None when Slack will not say
    (no history scope, an outage): then whatever was posted may be posted again."""
    if conversation.thread:
        data = await call(
            client,
            "conversations.replies",
            channel=conversation.channel,
            ts=conversation.thread,
            limit=_LOOK_BACK,
            include_all_metadata=True,
        )
    else:
        data = await call(
            client, "conversations.history", channel=conversation.channel, limit=_LOOK_BACK, include_all_metadata=True
        )
    if data is None:
        return None
    found: dict[str, str] = {}
    for message in data.get("messages") or []:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == REPLY_EVENT and payload.get("delivery") == delivery:
            found[str(payload.get("part"))] = str(message.get("ts"))
    return found
