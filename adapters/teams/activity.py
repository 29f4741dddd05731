"""Reading a Bot Framework activity: where it came from, who sent it, what they said. Pure functions on the
botbuilder schema, so the route, the inbound turn and the tests share one reading of every field."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final, TypeGuard
from urllib.parse import urlparse

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from adapters.teams.ai import time_zone_of
from bot.types import Caller, Conversation

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# The invoke answer that shows the clicker a line of text instead of a card.
MESSAGE_RESPONSE: Final = "application/vnd.microsoft.activity.message"
_MESSAGE_ID: Final = re.compile(r";messageid=([^;]+)", re.IGNORECASE)


def loopback_service_url(service_url: str) -> bool:
    try:
        return (urlparse(service_url).hostname or "") in LOOPBACK
    except ValueError:
        return False


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def well_formed(activity: Activity | None) -> TypeGuard[Activity]:
    return bool(
        activity is not None
        and activity.type
        and activity.service_url
        and activity.conversation is not None
        and activity.conversation.id
        and activity.from_property is not None
        and activity.from_property.id
    )


def tenant_of(activity: Activity, missing: str = "local") -> str:
    tenant = as_dict(as_dict(activity.channel_data).get("tenant"))
    # botbuilder-schema 4.17 maps ConversationAccount.tenant_id to the JSON key "tenantID"; Teams sends
    # "tenantId", which deserialises into the conversation's additional_properties instead.
    conversation = activity.conversation
    extra = as_dict(getattr(conversation, "additional_properties", None))
    for candidate in (tenant.get("id"), getattr(conversation, "tenant_id", None), extra.get("tenantId")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return missing


def principal_of(activity: Activity) -> str:
    """`teams:<tenant>:<AAD object id>`: an object id is unique only within its tenant."""
    sender = activity.from_property
    return f"teams:{tenant_of(activity)}:{sender.aad_object_id or sender.id}"


def channel_of(activity: Activity) -> str:
    """The activity's conversation id without a channel thread's `;messageid=…`: the chat or channel itself."""
    return _MESSAGE_ID.sub("", activity.conversation.id or "")


def caller_of(activity: Activity) -> Caller:
    """Who is asking, for the core's gate: the sender in their tenant, and the tenant the activity came through."""
    return Caller(
        platform="teams", workspace=tenant_of(activity), user=principal_of(activity), name=activity.from_property.name
    )


def strip_bot_mention(activity: Activity) -> str:
    """The text without `<at>bot</at>`; mentions of other people stay, they are part of the message."""
    text = activity.text if isinstance(activity.text, str) else ""
    bot_id = activity.recipient.id if activity.recipient else None
    # Entities arrive as loosely typed JSON: anything not shaped like a mention of us is left alone.
    for entity in activity.entities or []:
        extra = as_dict(getattr(entity, "additional_properties", None))
        mentioned = as_dict(extra.get("mentioned"))
        if str(getattr(entity, "type", "") or "").lower() != "mention" or not bot_id or mentioned.get("id") != bot_id:
            continue
        tag = extra.get("text")
        text = text.replace(tag if isinstance(tag, str) and tag else f"<at>{mentioned.get('name', '')}</at>", " ")
    return re.sub(r"[ \t]+", " ", text).strip()


def conversation_of(activity: Activity, thread_memory: bool = False) -> Conversation:
    """The activity's conversation; with `thread_memory` a channel thread is a conversation of its own."""
    full_id: str = activity.conversation.id
    root = _MESSAGE_ID.search(full_id)
    is_channel = (activity.conversation.conversation_type or "") == "channel"
    reference = TurnContext.get_conversation_reference(activity).serialize()
    thread = root.group(1) if root else (activity.id if is_channel else None)
    zone = time_zone_of(activity.local_timezone, activity.entities)
    if zone:
        reference["timezone"] = zone  # the sender's, for the times shown in this conversation's cards
    return Conversation(
        platform="teams",
        workspace=tenant_of(activity),
        channel=channel_of(activity),
        thread=thread,
        reference=reference,
        thread_history=thread_memory and is_channel and thread is not None,
    )


def invoke_body(body: Any, status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, **body}


def sent_from(activity: Activity) -> dict[str, Any]:
    """When and in which time zone the person sent the message, for Incoming (the activity's `timestamp`, and
    `time_zone_of`); {} for what Teams did not send."""
    found: dict[str, Any] = {}
    if isinstance(activity.timestamp, dt.datetime):
        sent = activity.timestamp if activity.timestamp.tzinfo else activity.timestamp.replace(tzinfo=dt.UTC)
        found["received_at"] = sent.timestamp()
    if zone := time_zone_of(activity.local_timezone, activity.entities):
        found["timezone"] = zone
    return found
