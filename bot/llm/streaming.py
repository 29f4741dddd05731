"""Chat Completions streaming: chunks (`stream=True`) assembled into the same assistant message a plain call
returns, so the history and the approvals cannot tell the two apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletionChunk

from bot.llm.model import Usage, usage_of


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Collects one streamed answer. Tool calls arrive as deltas keyed by `index`: the first names the call
    (id, function name), the rest carry pieces of its JSON arguments."""

    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; returns the text it adds to the answer ("" for none)."""
        if chunk.usage is not None:
            self.usage = usage_of(chunk.usage)
        text = ""
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                text += delta.content
            if delta.refusal:
                self.refusal.append(delta.refusal)
            for piece in delta.tool_calls or ():
                call = self.calls.setdefault(piece.index, _Call())
                if piece.id:
                    call.id = piece.id
                if piece.function is not None:
                    if piece.function.name:
                        call.name += piece.function.name
                    if piece.function.arguments:
                        call.arguments.append(piece.function.arguments)
        if text:
            self.content.append(text)
        return text

    def message(self) -> dict[str, Any]:
        """The assistant message, as a plain call would have returned it."""
        # A refusal streams its reason in `refusal` with no content: the reason is the answer.
        content = "".join(self.content) or "".join(self.refusal)
        out: dict[str, Any] = {"role": "assistant", "content": content}
        if self.calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "".join(call.arguments)},
                }
                for _, call in sorted(self.calls.items())
            ]
        return out

    @property
    def refused_only(self) -> bool:
        """Only a refusal came, no text: it is shown once the stream ends, not streamed."""
        return bool(self.refusal) and not self.content
