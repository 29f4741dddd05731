"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1 for the real AsyncOpenAI client.

It plays scripted answers, injects faults, and checks every request the way the real API does
(orphan tool_call ids answer 400), recording violations so a test can assert there were none.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.support.prompt_cache import PromptCache, segments, tokens

Request = dict[str, Any]
Message = dict[str, Any]
Responder = Callable[[Request], "Message | Fault | Awaitable[Message | Fault]"]

_ids = itertools.count(1)


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(
        default_factory=lambda: {"error": {"message": "injected fault", "type": "server_error"}}
    )


def text(content: str) -> Message:
    return {"role": "assistant", "content": content}


def call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id or f"call_{next(_ids)}", "type": "function", "function": {"name": name, "arguments": args}}


def calls(*tool_calls: dict[str, Any], content: str | None = None) -> Message:
    return {"role": "assistant", "content": content, "tool_calls": list(tool_calls)}


def last_message(request: Request) -> Message:
    messages: list[Message] = request["messages"]
    return messages[-1]


_STAMP = re.compile(r"^\[[A-Z][a-z]+day \d{4}-\d\d-\d\d \d\d:\d\d [^\]]+\] ")


def unstamped(content: Any) -> str:
    """A user message's text without the date and time propbot puts at its head (`[Monday 2026-12-07 11:30 UTC] `):
    what the person wrote (after their name, where there is one)."""
    return _STAMP.sub("", str(content), count=1)


def tool_results(request: Request) -> list[dict[str, Any]]:
    """The parsed tool results after the last assistant message."""
    out: list[dict[str, Any]] = []
    for msg in reversed(request["messages"]):
        if msg["role"] != "tool":
            break
        out.insert(0, json.loads(msg["content"]))
    return out


def offered_tools(request: Request) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


def validate(request: Request) -> list[str]:
    """What the real API would refuse in this request."""
    problems: list[str] = []
    if "functions" in request or "function_call" in request:
        problems.append("deprecated 'functions' API used")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages missing"]
    open_ids: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "tool":
            if msg.get("tool_call_id") not in open_ids:
                problems.append(f"message {i}: role 'tool' must be a response to a preceding 'tool_calls'")
            open_ids.discard(msg.get("tool_call_id"))
            continue
        if open_ids:
            problems.append(f"message {i}: tool_call_ids {sorted(open_ids)} have no response messages")
            open_ids.clear()
        if role == "assistant" and msg.get("tool_calls"):
            open_ids = {c["id"] for c in msg["tool_calls"]}
        elif role == "assistant" and not isinstance(msg.get("content"), str):
            # The API: "Invalid value for 'content': expected a string, got null."
            problems.append(f"message {i}: an assistant message without tool_calls needs string content")
    if open_ids:
        problems.append(f"end: tool_call_ids {sorted(open_ids)} have no response messages")
    for tool in request.get("tools", []):
        if tool.get("type") != "function":
            problems.append("a tool is not of type function")
    return problems


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: deque[Message | Fault | Responder] = deque()
        self.default: Responder | None = None
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.latency = 0.0
        self.token_delay = 0.0  # between streamed chunks
        self.cut_stream_after: int | None = None  # the next stream drops its connection after this many chunks
        self.model_time = 0.0  # total seconds spent "thinking", for overhead measurements
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        # What GET /v1/models lists, and the one key it accepts when set (None: any key).
        self.models = ["fake-model"]
        self.api_key: str | None = None
        self.cache = PromptCache()  # what the provider's prompt cache would serve; reported in usage

    def push(self, *items: Message | Fault | Responder) -> None:
        self.script.extend(items)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, http: web.Request) -> web.Response:
        if self.api_key is not None and http.headers.get("Authorization") != f"Bearer {self.api_key}":
            error = {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return web.json_response({"error": error}, status=401)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        body = await http.json()
        self.requests.append(body)
        problems = validate(body)
        if problems:
            self.violations.extend(problems)
            return web.json_response({"error": {"message": problems[0], "type": "invalid_request_error"}}, status=400)
        if self.latency:
            started = time.perf_counter()
            await asyncio.sleep(self.latency)
            self.model_time += time.perf_counter() - started
        item: Message | Fault | Responder | None = self.script.popleft() if self.script else self.default
        if item is None:
            return web.json_response({"error": {"message": "fake script is empty"}}, status=500)
        answer: Any = item(body) if callable(item) else item
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, Fault):
            return web.json_response(answer.body, status=answer.status, headers=answer.headers)
        cached = self.cache.serve(body)
        if body.get("stream"):
            return await self._stream(http, body, answer, cached)
        return web.json_response(_completion(body, answer, cached))

    async def _stream(
        self, http: web.Request, request: Request, message: Message, cached: int = 0
    ) -> web.StreamResponse:
        """Server-sent events as the API sends them: `data: <chunk>` lines, then `data: [DONE]`."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(http)
        cut, self.cut_stream_after = self.cut_stream_after, None
        for i, chunk in enumerate(stream_chunks(request, message, cached)):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            if cut is not None and i == cut:
                assert http.transport is not None
                http.transport.abort()  # the connection drops mid-answer
                return response
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _completion(request: Request, message: Message, cached: int = 0) -> dict[str, Any]:
    prompt = tokens(segments(request))
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"refusal": None, **message},
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": 10,
            "total_tokens": prompt + 10,
            "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
        },
    }


def stream_chunks(request: Request, message: Message, cached: int = 0) -> list[dict[str, Any]]:
    """`message` as Chat Completions stream chunks: the role, the content a few characters at a time, each tool
    call named in one chunk and its arguments in pieces, the finish reason, then usage (include_usage)."""
    base = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = request.get("model", "fake")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    content = message.get("content") or ""
    out += [chunk({"content": content[i : i + 7]}) for i in range(0, len(content), 7)]
    for index, tool_call in enumerate(message.get("tool_calls") or []):
        head = {"index": index, "id": tool_call["id"], "type": "function"}
        out.append(
            chunk({"tool_calls": [{**head, "function": {"name": tool_call["function"]["name"], "arguments": ""}}]})
        )
        arguments = tool_call["function"]["arguments"]
        for i in range(0, len(arguments), 11):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 11]}}]}))
    if message.get("refusal"):
        out.append(chunk({"refusal": message["refusal"]}))
    out.append(chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    usage = _completion(request, message, cached)["usage"]
    if (request.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": usage})
    return out


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
