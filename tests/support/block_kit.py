"""What Slack refuses in a message: the documented Block Kit and message limits, checked by the fakes."""

from __future__ import annotations

import json
from typing import Any


def check_message(args: dict[str, Any]) -> list[str]:
    """What Slack would refuse: the documented Block Kit and message limits."""
    problems: list[str] = []
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not args.get("channel"):
        problems.append("no channel")
    if not args.get("text") and not blocks:
        problems.append("neither text nor blocks")
    if len(str(args.get("text") or "")) > 40_000:
        problems.append("text over 40000 characters")
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")
    for block in blocks:
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "")
        if kind == "section":
            if len(text) > 3000:
                problems.append(f"section text of {len(text)} characters")
            fields = block.get("fields") or []
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                problems.append("section fields over limits")
            if not text and not fields:
                problems.append("empty section")
        elif kind == "header" and (len(text) > 150 or block["text"]["type"] != "plain_text"):
            problems.append("header over limits")
        elif kind == "actions":
            for element in block.get("elements", []):
                if len(element.get("value", "")) > 2000 or len(element["text"]["text"]) > 75:
                    problems.append("button over limits")
        elif kind == "context" and len(block.get("elements", [])) > 10:
            problems.append("context with over 10 elements")
        elif kind == "context_actions":
            for element in block.get("elements", []):
                if element.get("type") not in ("feedback_buttons", "icon_button"):
                    problems.append(f"context_actions element {element.get('type')!r}")
                if element.get("type") == "feedback_buttons":
                    for side in ("positive_button", "negative_button"):
                        button = element.get(side) or {}
                        if not button.get("value") or len(button["value"]) > 2000 or not button.get("text"):
                            problems.append(f"feedback {side} over limits")
    return problems
