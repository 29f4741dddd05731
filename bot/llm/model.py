"""What the core needs of a chat model: one call, messages and tool schemas in, one assistant message out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        """One answer; raises bot.errors.ModelError when the model cannot give one."""

    async def close(self) -> None: ...
