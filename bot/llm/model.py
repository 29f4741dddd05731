"""What the core needs of a chat model: one call, messages and tool schemas in, one assistant message out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Where a streamed answer's text goes, delta by delta, as the model writes it.
TextSink = Callable[[str], Awaitable[None]]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ModelReply:
    message: dict[str, Any]  # a Chat Completions assistant message, as it goes into the history
    usage: Usage = field(default_factory=Usage)
    latency: float = 0.0
    attempts: int = 1

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.message.get("tool_calls") or []
        return calls


class ChatModel(Protocol):
    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], on_text: TextSink | None = None
    ) -> ModelReply:
        """One answer; raises bot.errors.ModelError when the model cannot give one. With `on_text`, the answer's
        text is streamed there as it is written (and is also the returned message's content). Once text has
        been handed over, a failure is not retried: the same text would be shown twice."""

    async def close(self) -> None: ...
