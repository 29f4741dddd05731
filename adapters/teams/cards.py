"""Adaptive Cards (schema 1.5) for Teams: presentations, the approval card in its per-person views and its
decided form.

Plain dicts only, no botbuilder import: the cards are data, so they can be tested and reused by any
Teams SDK. The approval card carries nothing but the approval id; everything else is looked up when
it is clicked.
"""

from __future__ import annotations

from typing import Any, Final

from adapters.teams.ai import local_time
from bot.types import Approval, ApprovalStatus, Detail, Presentation

CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"
SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION: Final = "1.5"
APPROVE_VERB: Final = "propbot.approve"
CANCEL_VERB: Final = "propbot.cancel"
VERBS: Final = {APPROVE_VERB: "approve", CANCEL_VERB: "cancel"}
# Universal Actions refresh: Teams asks the bot for the card as the person looking at it should see it.
REFRESH_VERB: Final = "propbot.refresh"
MAX_REFRESH_USERS: Final = 60  # Teams refreshes automatically for at most this many listed users
APPROVER: Final = "approver"
REQUESTER: Final = "requester"
OTHER: Final = "other"
MAX_ITEMS: Final = 20  # Teams refuses cards over ~28 KB; a list is for choosing, not for reading

Card = dict[str, Any]


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> Card:
    out: Card = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body}
    if actions:
        out["actions"] = actions
    # Without this Teams renders cards at a narrow fixed width, which wraps every fact.
    out["msteams"] = {"width": "Full"}
    return out


def attachment(content: Card) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": content}


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _facts(details: list[Detail]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": d.label, "value": d.value or "—"} for d in details]}


def presentation_card(p: Presentation) -> Card:
    body: list[dict[str, Any]] = [_text(p.title, weight="Bolder", size="Medium")]
    if p.image_url:
        body.append({"type": "Image", "url": p.image_url, "size": "Large", "altText": p.title})
    if p.fields:
        body.append(_facts(p.fields))
    for item in p.items[:MAX_ITEMS]:
        parts: list[dict[str, Any]] = [_text(item.title, weight="Bolder")]
        if item.fields:
            parts.append(_facts(item.fields))
        container: dict[str, Any] = {"type": "Container", "separator": True, "items": parts}
        if item.link:
            container["selectAction"] = {"type": "Action.OpenUrl", "url": item.link}
        body.append(container)
    if len(p.items) > MAX_ITEMS:
        body.append(_text(f"… and {len(p.items) - MAX_ITEMS} more", isSubtle=True, size="Small"))
    if p.footer:
        body.append(_text(p.footer, isSubtle=True, size="Small"))
    actions = [{"type": "Action.OpenUrl", "title": p.link_text or "Open", "url": p.link_url}] if p.link_url else None
    return card(body, actions)


def _approval_body(approval: Approval) -> list[dict[str, Any]]:
    facts = [
        Detail(label="Tool", value=approval.tool.replace("_", " ")),
        *approval.summary,
        Detail(label="Requested by", value=approval.requested_by_name or approval.requested_by),
    ]
    return [_text(approval.title or approval.tool, weight="Bolder", size="Medium"), _facts(facts)]


def _button(title: str, verb: str, approval_id: str, style: str) -> dict[str, Any]:
    # Action.Execute (Universal Actions) answers in the invoke itself; clients older than card 1.4
    # fall back to Action.Submit, which arrives as a message activity carrying `data` as its value.
    return {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": {"approval_id": approval_id},
        "style": style,
        "fallback": {
            "type": "Action.Submit",
            "title": title,
            "data": {"approval_id": approval_id, "action": VERBS[verb]},
        },
    }


def _refresh(approval_id: str, user_ids: list[str] | None) -> dict[str, Any]:
    action = {"type": "Action.Execute", "title": "Refresh", "verb": REFRESH_VERB, "data": {"approval_id": approval_id}}
    out: dict[str, Any] = {"action": action}
    if user_ids:
        out["userIds"] = user_ids[:MAX_REFRESH_USERS]
    return out


def shared_card(approval: Approval, user_ids: list[str], zone: str | None = None) -> Card:
    """The pending card as posted, which everyone sees: the request without its decision buttons. Teams
    refreshes it into each listed person's own view (`approval_card`) as they look at it; anyone else can ask
    for theirs with "Show my options"."""
    body = [*_approval_body(approval), _expires(approval, zone)]
    options = {"type": "Action.Execute", "title": "Show my options", "verb": REFRESH_VERB}
    out = card(body, [{**options, "data": {"approval_id": approval.id}}])
    out["refresh"] = _refresh(approval.id, user_ids)
    return out


def approval_card(approval: Approval, notice: str | None = None, view: str = APPROVER, zone: str | None = None) -> Card:
    """The pending card for one person: an approver gets Approve / Cancel, the requester "waiting for approval"
    and Cancel (withdrawing one's own request), anyone else no buttons. `notice` explains why a click changed
    nothing."""
    body: list[dict[str, Any]] = []
    if notice:
        body.append(_text(notice, color="Attention", weight="Bolder"))
    body += _approval_body(approval)
    body.append(_expires(approval, zone))
    actions: list[dict[str, Any]] = []
    if view == APPROVER:
        actions.append(_button("Approve", APPROVE_VERB, approval.id, "positive"))
    if view == REQUESTER:
        body.append(_text("Waiting for approval by a manager.", weight="Bolder", color="Accent"))
    if view in (APPROVER, REQUESTER):
        actions.append(_button("Cancel", CANCEL_VERB, approval.id, "destructive"))
    out = card(body, actions)
    out["refresh"] = _refresh(approval.id, None)
    return out


def _expires(approval: Approval, zone: str | None) -> dict[str, Any]:
    return _text(f"Expires {local_time(approval.expires_at, zone)}", isSubtle=True, size="Small")


_STATUS_WORDS: Final = {
    ApprovalStatus.APPROVED: ("Approved", "Accent"),
    ApprovalStatus.DONE: ("Approved and done", "Good"),
    ApprovalStatus.FAILED: ("Approved, but it failed", "Attention"),
    ApprovalStatus.CANCELLED: ("Cancelled", "Warning"),
    ApprovalStatus.EXPIRED: ("Expired", "Warning"),
    ApprovalStatus.PENDING: ("Waiting for a decision", "Default"),
}


_RESULT_KEYS: Final = ("request_id", "status")


def _result_details(result: dict[str, Any] | None) -> list[Detail]:
    """Identifying facts of what the tool did. The stored result is the tool's `{ok, summary, error, data}`."""
    data = (result or {}).get("data")
    found = data if isinstance(data, dict) else {}
    return [
        Detail(label=key.replace("_", " ").capitalize(), value=str(found[key]).replace("_", " "))
        for key in _RESULT_KEYS
        if found.get(key) not in (None, "")
    ]


def _outcome_line(approval: Approval) -> str | None:
    result = approval.result or {}
    if approval.status is ApprovalStatus.FAILED:
        return f"Failed: {result.get('error') or 'the tool reported an error'}"
    summary = result.get("summary")
    return str(summary) if summary else None


def decided_card(approval: Approval, message: str | None = None, zone: str | None = None) -> Card:
    """The card once decided: no buttons left, who decided, when, and what came of it."""
    words, color = _STATUS_WORDS[approval.status]
    body = _approval_body(approval)
    who = approval.decided_by_name or approval.decided_by
    line = f"{words} by {who}" if who else words
    body.append(_text(f"{line} · {local_time(approval.decided_at, zone)}", weight="Bolder", color=color))
    if (outcome := _outcome_line(approval)) is not None:
        body.append(_text(outcome))
    details = _result_details(approval.result)
    if details:
        body.append(_facts(details))
    if message:
        body.append(_text(message, isSubtle=True))
    return card(body)
