"""What the Chat Completions API refuses in a request (with 400), checked without a network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def request_problems(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The reasons the real API would refuse these messages; [] for a valid request."""
    problems: list[str] = []
    if not messages:
        return ["messages missing"]
    open_ids: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "tool":
            if msg.get("tool_call_id") not in open_ids:
                problems.append(f"message {i}: role 'tool' must be a response to a preceding 'tool_calls'")
            open_ids.discard(str(msg.get("tool_call_id")))
            continue
        if open_ids:
            problems.append(f"message {i}: tool_call_ids {sorted(open_ids)} have no response messages")
            open_ids.clear()
        if role == "assistant" and msg.get("tool_calls"):
            open_ids = {str(c["id"]) for c in msg["tool_calls"]}
        elif role == "assistant" and msg.get("content") is None:
            problems.append(f"message {i}: an assistant message needs content or tool_calls")
    if open_ids:
        problems.append(f"end: tool_call_ids {sorted(open_ids)} have no response messages")
    problems += [f"tool {i} is not of type function" for i, t in enumerate(tools) if t.get("type") != "function"]
    return problems
