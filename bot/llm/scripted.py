"""A chat model played from a script, in process: the loop, approvals and history rules tested without HTTP.

Each script step is an assistant message (a dict), a `ModelError` to raise, or a function of the request
(messages, tools) returning either. Every request is checked the way the real API checks it; a request it
would refuse is recorded in `violations` and answered with ModelError(BAD_REQUEST), as the API's 400 would be.
The HTTP-level fake (tests/support/fake_openai.py) stays for the client and wire tests.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.errors import ModelError, ModelFailure
from bot.llm.model import ModelReply, TextSink
from bot.llm.wire import request_problems

Message = dict[str, Any]
Step = Message | ModelError | Callable[["ScriptedRequest"], "Message | ModelError"]

_ids = itertools.count(1)


@dataclass(frozen=True)
class ScriptedRequest:
    messages: list[Message]
    tools: list[dict[str, Any]]

    @property
    def offered(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]

    @property
    def last(self) -> Message:
        return self.messages[-1]

    def results(self) -> list[dict[str, Any]]:
        """The parsed tool results after the last assistant message."""
        found: list[dict[str, Any]] = []
        for msg in reversed(self.messages):
            if msg.get("role") != "tool":
                break
            found.insert(0, json.loads(msg["content"]))
        return found


def say(text: str) -> Message:
    return {"role": "assistant", "content": text}


def call(name: str, **arguments: Any) -> Message:
    """An assistant message calling one tool with these arguments."""
    tool_call = {
        "id": f"call_s{next(_ids)}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return {"role": "assistant", "content": None, "tool_calls": [tool_call]}


@dataclass
class ScriptedModel:
    script: deque[Step] = field(default_factory=deque)
    default: Step | None = None
    requests: list[ScriptedRequest] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def push(self, *steps: Step) -> None:
        self.script.extend(steps)

    async def complete(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        on_text: TextSink | None = None,
        cache_key: str | None = None,
    ) -> ModelReply:
        # Copies: the caller keeps extending its history, and a test reads what was sent at the time.
        request = ScriptedRequest(json.loads(json.dumps(messages)), json.loads(json.dumps(tools)))
        self.requests.append(request)
        if problems := request_problems(request.messages, request.tools):
            self.violations.extend(problems)
            raise ModelError(ModelFailure.BAD_REQUEST, problems[0])
        step = self.script.popleft() if self.script else self.default
        if step is None:
            raise ModelError(ModelFailure.UNAVAILABLE, "the script is empty")
        answer = step(request) if callable(step) else step
        if isinstance(answer, ModelError):
            raise answer
        content = answer.get("content")
        if on_text is not None and isinstance(content, str):
            # Word by word, as a streaming server sends it.
            for piece in re.findall(r"\S+\s*|\s+", content):
                await on_text(piece)
        return ModelReply(message=answer)

    async def close(self) -> None:
        return None
