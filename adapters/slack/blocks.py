"""Block Kit for propbot's replies, presentations and approval cards, within Slack's limits.

Everything a model, a user or the database wrote goes through `slack_format.escape`; only mentions we
build ourselves from stored, validated user ids (`<@U..>`) and dates (`<!date^..>`) are raw mrkdwn.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from adapters.plain import approval_text, presentation_text
from adapters.slack import format as fmt
from bot.types import Approval, ApprovalStatus, Presentation, TextReply

Block = dict[str, Any]

APPROVE_ACTION = "propbot_approve"
CANCEL_ACTION = "propbot_cancel"
FEEDBACK_ACTION = "propbot_feedback"
MAX_BLOCKS = 50
MAX_FIELDS = 10
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
FALLBACK_LIMIT = 3000  # notifications show a line or two; the blocks carry the rest
MESSAGE_BUDGET = 35_000  # characters of block text per message, under Slack's ~40k

_SLACK_USER = re.compile(r"^slack:[A-Z0-9]+:([UW][A-Z0-9]+)$")


@dataclass
class Message:
    """One chat.postMessage / chat.update payload: blocks and the plain-text fallback."""

    blocks: list[Block] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)
    size: int = 0

    def payload(self) -> dict[str, Any]:
        text = fmt.truncate(fmt.escape("\n".join(p for p in self.fallback if p)), FALLBACK_LIMIT)
        return {"text": text or "propbot", "blocks": self.blocks}


def section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fmt.truncate(mrkdwn, fmt.SECTION_LIMIT)}}


def context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fmt.truncate(mrkdwn, FIELD_LIMIT)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": fmt.truncate(fmt.defuse(text), HEADER_LIMIT)}}


def mention(principal: str | None) -> str:
    """`<@U..>` for a Slack principal we stored ourselves; anything else as escaped text."""
    if not principal:
        return "someone"
    match = _SLACK_USER.match(principal)
    return f"<@{match.group(1)}>" if match else fmt.escape(principal)


def date(epoch: float) -> str:
    """A date every reader sees in their own time zone, with a UTC fallback for old clients."""
    utc = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    return f"<!date^{int(epoch)}^{{date_short_pretty}} at {{time}}|{utc}>"


# -- replies -----------------------------------------------------------------------------------------


def reply_messages(reply: TextReply) -> list[Message]:
    """The model's text, then each presentation, packed into as few messages as the limits allow."""
    parts: list[tuple[list[Block], str]] = []
    if reply.text.strip():
        prefix = ":warning: " if reply.is_error else ""
        for piece in fmt.split(prefix + fmt.to_mrkdwn(reply.text)):
            parts.append(([section(piece)], ""))
        parts[0] = (parts[0][0], reply.text)
    for presentation in reply.presentations:
        parts.append((presentation_blocks(presentation), presentation_text(presentation, max_items=10)))
    return pack(parts)


def feedback_block(tools: list[str]) -> Block:
    """👍/👎 under an answer; each button's value says which way and which tools the answer rests on."""
    used = ",".join(tools)[:1900]

    def button(way: str, label: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": label}, "accessibility_label": label, "value": f"{way}|{used}"}

    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": button("good", "Good answer"),
                "negative_button": button("bad", "Bad answer"),
            }
        ],
    }


def answer_messages(reply: TextReply) -> list[Message]:
    """A turn's answer whole: its text and presentations, then the feedback buttons."""
    return _with_feedback(reply, reply_messages(reply))


def answer_extras(reply: TextReply) -> list[Message]:
    """What completes a streamed answer (whose text is already shown): presentations, then feedback."""
    parts = [(presentation_blocks(p), presentation_text(p, max_items=10)) for p in reply.presentations]
    return _with_feedback(reply, pack(parts))


def _with_feedback(reply: TextReply, messages: list[Message]) -> list[Message]:
    if reply.is_error:
        return messages
    return pack([(m.blocks, "\n".join(m.fallback)) for m in messages] + [([feedback_block(reply.tools)], "")])


def pack(parts: list[tuple[list[Block], str]]) -> list[Message]:
    messages = [Message()]
    for blocks, fallback in parts:
        for i in range(0, len(blocks), MAX_BLOCKS):
            chunk = blocks[i : i + MAX_BLOCKS]
            size = sum(_text_size(b) for b in chunk)
            current = messages[-1]
            if current.blocks and (
                len(current.blocks) + len(chunk) > MAX_BLOCKS or current.size + size > MESSAGE_BUDGET
            ):
                current = Message()
                messages.append(current)
            current.blocks.extend(chunk)
            current.size += size
            if fallback and i == 0:
                current.fallback.append(fallback)
    return [m for m in messages if m.blocks]


def _text_size(block: Block) -> int:
    size = len(block.get("text", {}).get("text", ""))
    size += sum(len(f.get("text", "")) for f in block.get("fields", []))
    size += sum(len(e.get("text", "")) for e in block.get("elements", []) if isinstance(e.get("text"), str))
    return size


def presentation_blocks(p: Presentation) -> list[Block]:
    blocks: list[Block] = [section(f"*{fmt.escape(p.title)}*")]
    if p.image_url and p.image_url.startswith("https://"):
        blocks[0]["accessory"] = {"type": "image", "image_url": p.image_url, "alt_text": fmt.truncate(p.title, 2000)}
    blocks += field_sections([(d.label, d.value) for d in p.fields])
    lines = [_item_line(item.title, [d.value for d in item.fields], item.link) for item in p.items]
    blocks += [section(piece) for piece in fmt.split("\n".join(lines))] if lines else []
    notes = []
    if p.link_url and p.link_url.startswith(("https://", "http://")):
        notes.append(f"<{p.link_url.replace('|', '%7C').replace('>', '%3E')}|{fmt.escape(p.link_text or 'Open')}>")
    if p.footer:
        notes.append(fmt.escape(p.footer))
    if notes:
        blocks.append(context("  ·  ".join(notes)))
    return blocks


def _item_line(title: str, values: list[str], link: str | None) -> str:
    name = fmt.escape(title)
    if link and link.startswith(("https://", "http://")):
        name = f"<{link.replace('|', '%7C').replace('>', '%3E')}|{name.replace('|', '¦')}>"
    details = " · ".join(fmt.escape(v) for v in values if v)
    return f"• *{name}*" + (f"\n      {details}" if details else "")


def field_sections(pairs: list[tuple[str, str]]) -> list[Block]:
    """Label/value pairs as two-column fields; long values get a section of their own."""
    blocks: list[Block] = []
    fields: list[dict[str, str]] = []
    for label, value in pairs:
        text = f"*{fmt.escape(label)}*\n{fmt.escape(value)}"
        if len(text) > 300:
            blocks.append(section(text))
            continue
        fields.append({"type": "mrkdwn", "text": text})
    for i in range(0, len(fields), MAX_FIELDS):
        blocks.insert(i // MAX_FIELDS, {"type": "section", "fields": fields[i : i + MAX_FIELDS]})
    return blocks


# -- approval cards ----------------------------------------------------------------------------------


def _details(approval: Approval) -> list[Block]:
    pairs = [("Tool", approval.tool.replace("_", " "))]
    pairs += [(d.label, d.value) for d in approval.summary]
    blocks = field_sections(pairs)
    blocks.append(context(f"Requested by {mention(approval.requested_by)}"))
    return blocks


def approval_card(approval: Approval) -> dict[str, Any]:
    title = approval.title or approval.tool.replace("_", " ")
    blocks = [header(f"Approval needed: {title}"), *_details(approval)]
    blocks.append(context(f"Expires {date(approval.expires_at)}"))
    blocks.append(
        {
            "type": "actions",
            "block_id": "propbot_decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": approval.id,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Approve this request?"},
                        "text": {"type": "mrkdwn", "text": fmt.truncate(f"propbot will {fmt.escape(title)} now.", 300)},
                        "confirm": {"type": "plain_text", "text": "Approve"},
                        "deny": {"type": "plain_text", "text": "Back"},
                    },
                },
                {
                    "type": "button",
                    "action_id": CANCEL_ACTION,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger",
                    "value": approval.id,
                },
            ],
        }
    )
    return {"text": fmt.truncate(fmt.escape(approval_text(approval)), FALLBACK_LIMIT), "blocks": blocks}


_VERBS = {
    ApprovalStatus.APPROVED: ("Approved", ":hourglass_flowing_sand:"),
    ApprovalStatus.DONE: ("Approved", ":white_check_mark:"),
    ApprovalStatus.FAILED: ("Approved but failed", ":x:"),
    ApprovalStatus.CANCELLED: ("Cancelled", ":no_entry_sign:"),
    ApprovalStatus.EXPIRED: ("Expired", ":hourglass:"),
}


def closed_card(approval: Approval) -> dict[str, Any]:
    """The card once decided: same details, no buttons, who decided and when, then what came of it, all
    from the stored approval, so every process and every click renders the same final state."""
    verb, icon = _VERBS.get(approval.status, ("Closed", ":information_source:"))
    title = approval.title or approval.tool.replace("_", " ")
    when = approval.decided_at or time.time()
    if approval.status is ApprovalStatus.EXPIRED:
        who = f"Expired {date(when)} before anyone decided"
    else:
        who = f"{verb} by {mention(approval.decided_by)} {date(when)}"
    result_line = f"{icon} {outcome_text(approval)}"
    blocks = [header(f"{verb}: {title}"), *_details(approval), context(who), section(result_line)]
    fallback = f"{verb}: {title}. {outcome_text(approval)}"
    return {"text": fmt.truncate(fmt.escape(fallback), FALLBACK_LIMIT), "blocks": blocks}


def outcome_text(approval: Approval) -> str:
    """What came of it, in the tool's own words when it gave them."""
    result = approval.result or {}
    status = approval.status
    if status is ApprovalStatus.DONE:
        summary = result.get("summary")
        return f"Done: {fmt.escape(str(summary))}" if summary else "Done."
    if status is ApprovalStatus.FAILED:
        return "Failed: " + fmt.escape(str(result.get("error") or "the tool reported an error"))
    if status is ApprovalStatus.CANCELLED:
        return "Cancelled: nothing was done."
    if status is ApprovalStatus.EXPIRED:
        return "Expired: nothing was done."
    if status is ApprovalStatus.APPROVED:
        return "Approved; finishing it now."
    return "Waiting for a decision."
