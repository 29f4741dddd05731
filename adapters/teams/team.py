"""The maintenance team's channel in Teams: where it is (the channel's conversation reference, remembered when
propbot is added to the team or hears from the channel, since Teams gives a bot no other way to post there), the
notice card with Mark in progress / Mark done, and those clicks (Action.Execute), permission-checked by the core."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from adapters.teams import cards
from adapters.teams.activity import _MESSAGE_ID, MESSAGE_RESPONSE, caller_of, channel_of, invoke_body, tenant_of
from bot.core.port import CorePort
from bot.types import Conversation, TeamNotice

log = logging.getLogger(__name__)

MARK_VERB: Final = "propbot.mark"


def channel_key(conversation_id: str) -> str:
    return "teams:" + _MESSAGE_ID.sub("", conversation_id)


async def remember_channel(core: CorePort, activity: Activity) -> bool:
    """Keep a team channel's reference (its root, not a thread), so notices can be posted there later; False when
    the activity is not from a team channel (or lacks what a reference needs)."""
    conversation = activity.conversation
    if conversation is None or conversation.conversation_type != "channel" or not isinstance(conversation.id, str):
        return False
    if not isinstance(activity.service_url, str) or not activity.service_url:
        return False
    reference = TurnContext.get_conversation_reference(activity).serialize()
    reference["conversation"]["id"] = _MESSAGE_ID.sub("", conversation.id)
    await core.surfaces.remember_place(channel_key(conversation.id), json.dumps(reference))
    return True


def notice_card(notice: TeamNotice, note: str = "") -> cards.Card:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"Maintenance: {notice.title}", "weight": "Bolder", "wrap": True}
    ]
    body.append({"type": "FactSet", "facts": [{"title": d.label, "value": d.value} for d in notice.fields]})
    if note:
        body.append({"type": "TextBlock", "text": note, "isSubtle": True, "wrap": True})
    actions = [
        {
            "type": "Action.Execute",
            "title": label,
            "verb": MARK_VERB,
            "data": {"request_id": notice.request_id, "status": s},
        }
        for s, label in notice.marks.items()
    ]
    return cards.card(body, actions)


async def mark(core: CorePort, activity: Activity, data: dict[str, Any]) -> dict[str, Any] | None:
    """A click on Mark in progress / Mark done: the invoke's answer is the card as it now stands, or a refusal
    shown to the clicker only; None when the data is not a button propbot made."""
    request_id, status = data.get("request_id"), data.get("status")
    if not isinstance(request_id, str) or not isinstance(status, str) or len(request_id) > 64:
        return None
    where = Conversation(platform="teams", workspace=tenant_of(activity), channel=channel_of(activity))
    marked = await core.surfaces.mark(caller_of(activity), request_id, status, where)
    if marked.notice is None:
        return invoke_body({"type": MESSAGE_RESPONSE, "value": marked.message})
    note = f"{marked.message} ({activity.from_property.name or 'someone'})"
    return invoke_body({"type": cards.CARD_CONTENT_TYPE, "value": notice_card(marked.notice, note)})
