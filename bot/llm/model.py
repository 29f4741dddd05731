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
    cached_tokens: int = 0  # of prompt_tokens, those the provider served from its prompt cache


def usage_of(reported: Any) -> Usage:
    """A response's (or final chunk's) `usage`, with `prompt_tokens_details.cached_tokens` where it is given."""
    details = getattr(reported, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return Usage(reported.prompt_tokens, reported.completion_tokens, cached if isinstance(cached, int) else 0)


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
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: TextSink | None = None,
        cache_key: str | None = None,
    ) -> ModelReply:
        """One answer; raises bot.errors.ModelError when the model cannot give one. With `on_text`, the answer's
        text is streamed there as it is written (and is also the returned message's content). Once text has
        been handed over, a failure is not retried: the same text would be shown twice. `cache_key` names the
        conversation for the provider's prompt cache (`prompt_cache_key`), where that is switched on."""

    async def close(self) -> None: ...
