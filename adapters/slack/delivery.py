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
    return await posted_with(client, conversation.channel, conversation.thread, REPLY_EVENT, delivery, _LOOK_BACK)


async def posted_with(
    client: AsyncWebClient, channel: str, thread: str | None, event_type: str, delivery: str, look_back: int
) -> dict[str, str] | None:
    """The messages among the last `look_back` of a thread (or of the channel's top level) whose metadata names
    `event_type` and `delivery`, as their part ("" for a message of one part) -> ts; None when the history cannot
    be read (no history scope, an outage)."""
    where = {"ts": thread} if thread else {}
    method = "conversations.replies" if thread else "conversations.history"
    data = await call(client, method, channel=channel, limit=look_back, include_all_metadata=True, **where)
    if data is None:
        return None
    found: dict[str, str] = {}
    for message in data.get("messages") or []:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == event_type and payload.get("delivery") == delivery:
            found[str(payload.get("part") or "")] = str(message.get("ts"))
    return found
