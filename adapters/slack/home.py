"""Block Kit for the App Home tab (a person's approvals and recent actions) and the maintenance request modal."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from adapters.slack import blocks
from adapters.slack import format as fmt
from bot.core.port import Home
from bot.types import Approval, AuditEvent

NEW_REQUEST_ACTION: Final = "propbot_new_request"
REQUEST_VIEW: Final = "propbot_request"
PROPERTY_ACTION: Final = "propbot_property"
MAX_LISTED: Final = 15  # approvals per section: a home view holds at most 100 blocks
REQUEST_TOOL: Final = "schedule_maintenance"
_ACTION_WORDS: Final = {"approval_requested": "asked for", "approved": "approved", "cancelled": "cancelled"}


def home_view(home: Home, notice: str = "", dm_channel: str = "") -> dict[str, Any]:
    """The Home tab for one person: a request button, what waits for their decision, what they asked for, and
    what they did lately. `dm_channel` (their DM with propbot) is where a request from the form is posted."""
    out: list[blocks.Block] = [blocks.header("propbot")]
    if notice:
        out.append(blocks.section(f":information_source: {fmt.escape(notice)}"))
    if home.refused:
        out.append(blocks.section("You are not allowed to use propbot in this workspace."))
        return {"type": "home", "blocks": out}
    if home.unavailable:
        out.append(blocks.section("propbot cannot read its approvals right now; try again in a minute."))
    if home.may_request:
        button = {
            "type": "button",
            "action_id": NEW_REQUEST_ACTION,
            "text": {"type": "plain_text", "text": "New maintenance request"},
            "style": "primary",
            "value": dm_channel or "-",
        }
        out.append({"type": "actions", "block_id": "propbot_home_new", "elements": [button]})
    out.append(blocks.section("*Waiting for your approval*"))
    out += _approvals(home.to_decide, approve=True) or [blocks.context("Nothing waits for you.")]
    out.append(blocks.section("*Your requests waiting for approval*"))
    out += _approvals(home.mine, approve=False) or [blocks.context("None.")]
    out.append(blocks.section("*Your recent actions*"))
    out += [blocks.context(_action_line(e)) for e in home.recent] or [blocks.context("None yet.")]
    return {"type": "home", "blocks": out}


def _approvals(approvals: list[Approval], *, approve: bool) -> list[blocks.Block]:
    out: list[blocks.Block] = []
    for approval in approvals[:MAX_LISTED]:
        title = approval.title or approval.tool.replace("_", " ")
        facts = " · ".join(f"{fmt.escape(d.label)}: {fmt.escape(d.value)}" for d in approval.summary[:4])
        who = f"asked by {blocks.mention(approval.requested_by)}, expires {blocks.date(approval.expires_at)}"
        out.append(blocks.section(f"*{fmt.escape(title)}*\n{facts}\n{who}"))
        card = blocks.approval_card(approval)
        buttons = next(b for b in card["blocks"] if b["type"] == "actions")["elements"]
        # The card's own buttons (same action ids, same approval id): a click here is decided like one on the card.
        elements = buttons if approve else [b for b in buttons if b["action_id"] == blocks.CANCEL_ACTION]
        out.append({"type": "actions", "block_id": f"propbot_home_{approval.id}", "elements": elements})
    if len(approvals) > MAX_LISTED:
        out.append(blocks.context(f"… and {len(approvals) - MAX_LISTED} more."))
    return out


def _action_line(event: AuditEvent) -> str:
    verb = _ACTION_WORDS.get(event.kind, event.kind.replace("_", " "))
    what = event.tool.replace("_", " ")
    line = f"{blocks.date(event.at)}: you {verb} {fmt.escape(what)}"
    return f"{line} ({fmt.escape(event.result)})" if event.result else line


def _select(action_id: str, values: list[str], placeholder: str) -> dict[str, Any]:
    options = [
        {"text": {"type": "plain_text", "text": v.replace("_", " ").capitalize()}, "value": v} for v in values[:100]
    ]
    return {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": {"type": "plain_text", "text": placeholder},
        "options": options,
    }


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False) -> blocks.Block:
    block = {"type": "input", "block_id": block_id, "label": {"type": "plain_text", "text": label}}
    return {**block, "element": element, "optional": optional}


def request_modal(dm_channel: str, issue_types: list[str], priorities: list[str]) -> dict[str, Any]:
    """The form for a maintenance request; its submission becomes a schedule_maintenance approval request."""
    today = dt.date.today().isoformat()
    property_select = {
        "type": "external_select",
        "action_id": PROPERTY_ACTION,
        "min_query_length": 0,
        "placeholder": {"type": "plain_text", "text": "Search by id, address or city"},
    }
    description = {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 1000}
    where = {
        "type": "conversations_select",
        "action_id": "value",
        "placeholder": {"type": "plain_text", "text": "Your DM with propbot"},
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    return {
        "type": "modal",
        "callback_id": REQUEST_VIEW,
        "private_metadata": dm_channel,
        "title": {"type": "plain_text", "text": "Maintenance request"},
        "submit": {"type": "plain_text", "text": "Ask for approval"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _input("property_id", "Property", property_select),
            _input("issue_type", "Issue type", _select("value", issue_types, "What kind of problem?")),
            _input("priority", "Priority", _select("value", priorities, "How urgent?")),
            _input("description", "Description", description),
            _input("preferred_date", "Preferred date", {"type": "datepicker", "action_id": "value"}, optional=True)
            | {"hint": {"type": "plain_text", "text": f"Today is {today}."}},
            _input("post_in", "Post the approval card in", where, optional=True),
        ],
    }


def read_request(values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A submitted request modal's state: the tool's arguments, and the channel picked for the card (if any)."""

    def chosen(block: str, key: str = "value") -> Any:
        element = (values.get(block) or {}).get(key) or {}
        kind = element.get("type")
        if kind in ("static_select", "external_select"):
            return (element.get("selected_option") or {}).get("value")
        if kind == "datepicker":
            return element.get("selected_date")
        if kind == "conversations_select":
            return element.get("selected_conversation")
        return element.get("value")

    arguments = {
        "property_id": chosen("property_id", PROPERTY_ACTION),
        "issue_type": chosen("issue_type"),
        "priority": chosen("priority"),
        "description": chosen("description"),
        "preferred_date": chosen("preferred_date"),
    }
    return arguments, chosen("post_in")
