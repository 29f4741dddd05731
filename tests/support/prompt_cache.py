"""The provider's prompt cache, as OpenAI documents it, for the fake model server: a request whose beginning (the
tools, then the messages in order) is exactly the beginning of an earlier request has that common part served from
the cache, counted in 128-token steps once it reaches 1,024 tokens, and reported as
`usage.prompt_tokens_details.cached_tokens`. Tokens are counted the way the fake counts a prompt (4 characters)."""

from __future__ import annotations

import json
from typing import Any, Final

MINIMUM: Final = 1024
STEP: Final = 128
KEPT: Final = 500  # earlier requests remembered


def segments(request: dict[str, Any]) -> list[str]:
    return [json.dumps(request.get("tools") or [], sort_keys=True)] + [
        json.dumps(m, sort_keys=True) for m in request["messages"]
    ]


def tokens(parts: list[str]) -> int:
    return sum(len(p) for p in parts) // 4


class PromptCache:
    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def serve(self, request: dict[str, Any]) -> int:
        """How many of this request's prompt tokens the cache serves; then remember the request."""
        parts = segments(request)
        best = 0
        for earlier in self.seen:
            common = 0
            for mine, theirs in zip(parts, earlier, strict=False):
                if mine != theirs:
                    break
                common += 1
            best = max(best, tokens(parts[:common]))
        self.seen.append(parts)
        del self.seen[:-KEPT]
        return (best // STEP) * STEP if best >= MINIMUM else 0
