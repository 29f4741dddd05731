"""Fake Slack Web API and fake OpenAI in one process of their own: `python -m bench.fakes`.

Kept out of the orchestrator so the fakes' CPU is not taken from the measured process's timings, and
lean (no Block Kit checks, no message store) so they stay cheap at 500 events/s. It prints its port on
the first line of stdout. Times are `time.monotonic()`: CLOCK_MONOTONIC is one clock for every process
on the machine, so a reply's arrival here can be subtracted from an event's send time in the load
generator.

Streaming (POST /admin/config {streaming: true}): chat.startStream works (else it answers `unknown_method`, and
propbot posts answers whole) and a `stream=true` model call is answered with server-sent chunks, the first
after `latency`, the rest `token_delay` apart.

Admin endpoints (JSON): POST /admin/config {latency, record, streaming, token_delay}, POST /admin/reset,
GET /admin/stats,
GET /admin/card?thread=&wait=, GET /admin/update?ts=&wait=, GET /admin/reply?thread=&wait=,
GET /admin/wait_replies?n=&wait=, GET /admin/requests.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# The bench encodes who an event is for in its text: `bench:<tag>` (the tag is also the event's ts, so
# the bot's reply lands in thread `<tag>`), and optionally `#call <tool> <json args>` for a tool call.
TAG = re.compile(r"bench:(\S+)")
CALL = re.compile(r"#call (\w+) (\{.*\})")
ANSWER = (
    "Here is what I found. The properties above match what you asked for; the ids are listed so you can "
    "ask about one of them, and I can schedule maintenance for any of them once someone approves it."
)

_ids = itertools.count(1)


@dataclass
class State:
    latency: float = 0.0
    record: bool = False
    streaming: bool = False
    token_delay: float = 0.0
    streams: dict[str, str] = field(default_factory=dict)  # streamed message ts -> thread
    first_text: dict[str, float] = field(default_factory=dict)  # thread -> first streamed text's arrival
    first_token: dict[str, float] = field(default_factory=dict)  # tag -> seconds to the model's first token
    replies: dict[str, float] = field(default_factory=dict)  # thread -> first chat.postMessage arrival
    posts: int = 0
    notices: int = 0
    cards: dict[str, dict[str, str]] = field(default_factory=dict)  # thread -> {ts, approval}
    updates: dict[str, float] = field(default_factory=dict)  # message ts -> chat.update arrival
    model_time: dict[str, float] = field(default_factory=dict)  # tag -> seconds inside the model handler
    model_calls: int = 0
    model_now: int = 0
    model_peak: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        fresh = State(
            latency=self.latency,
            record=self.record,
            streaming=self.streaming,
            token_delay=self.token_delay,
            changed=self.changed,
        )
        self.__dict__.update(fresh.__dict__)

    def touch(self) -> None:
        # Wake every long-poll; each re-checks its own condition.
        self.changed.set()
        self.changed = asyncio.Event()


STATE = web.AppKey("state", State)


# -- fake Slack ------------------------------------------------------------------------------------


async def slack(request: web.Request) -> web.Response:
    state = request.app[STATE]
    method = request.match_info["method"]
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        args.update(await request.json())
    elif request.can_read_body:
        args.update(dict(await request.post()))
    now = time.monotonic()
    state.counts[method] = state.counts.get(method, 0) + 1
    ts = f"{1_700_000_000 + next(_ids)}.000100"
    body: dict[str, Any] = {"ok": True}
    if method == "chat.postMessage":
        thread = str(args.get("thread_ts") or "")
        state.posts += 1
        # An answer follows a model call for its thread (the bare app, which has no model, says "ok");
        # anything else, e.g. propbot's "temporarily unavailable" notice at ingress, is not a turn.
        if thread in state.model_time or args.get("text") == "ok":
            state.replies.setdefault(thread, now)
        else:
            state.notices += 1
        approval = _approval_id(args.get("blocks"))
        if approval and thread not in state.cards:
            state.cards[thread] = {"ts": ts, "approval": approval}
        body.update(channel=args.get("channel"), ts=ts, message={"ts": ts, "text": args.get("text")})
        state.touch()
    elif method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
        if not state.streaming:
            return web.json_response({"ok": False, "error": "unknown_method"})
        _stream(state, method, args, ts, now)
        body.update(channel=args.get("channel"), ts=args.get("ts") or ts)
    elif method == "chat.update":
        state.updates.setdefault(str(args.get("ts")), now)
        body.update(channel=args.get("channel"), ts=args.get("ts"))
        state.touch()
    elif method == "users.info":
        user = str(args.get("user"))
        body["user"] = {"id": user, "name": user.lower(), "real_name": f"Bench {user}", "profile": {}}
    elif method == "auth.test":
        body.update(user_id="UBOT", bot_id="BBOT", team_id="T1", user="propbot", team="Bench")
    elif method == "chat.postEphemeral":
        body["message_ts"] = ts
    return web.json_response(body)


def _stream(state: State, method: str, args: dict[str, Any], ts: str, now: float) -> None:
    if method == "chat.startStream":
        state.streams[ts] = thread = str(args.get("thread_ts") or "")
    else:
        thread = state.streams.get(str(args.get("ts")), "")
    if any(c.get("type") == "markdown_text" and c.get("text") for c in args.get("chunks") or []):
        state.first_text.setdefault(thread, now)
    if method == "chat.stopStream" and thread in state.model_time:
        state.replies.setdefault(thread, now)
        state.posts += 1
    state.touch()


def _approval_id(blocks: Any) -> str | None:
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    for block in blocks or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == "propbot_approve":
                return str(element.get("value"))
    return None


# -- fake OpenAI -------------------------------------------------------------------------------------


async def completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    started = time.monotonic()
    state.model_now += 1
    state.model_peak = max(state.model_peak, state.model_now)
    try:
        body = await request.json()
        if state.record:
            state.requests.append(body)
        if state.latency:
            await asyncio.sleep(state.latency)
        messages: list[dict[str, Any]] = body["messages"]
        tag, message = answer(messages)
        if body.get("stream"):
            state.first_token[tag] = time.monotonic() - started
            response = await _sse(request, body, message, state.token_delay)
            state.model_calls += 1
            state.model_time[tag] = state.model_time.get(tag, 0.0) + state.first_token[tag]
            return response
        payload = {
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"refusal": None, **message},
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        }
        state.model_calls += 1
        state.model_time[tag] = state.model_time.get(tag, 0.0) + time.monotonic() - started
        return web.json_response(payload)
    finally:
        state.model_now -= 1


async def _sse(request: web.Request, body: dict[str, Any], message: dict[str, Any], delay: float) -> web.StreamResponse:
    """The answer as Chat Completions stream chunks (the text in pieces `delay` apart), then usage."""
    head = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "created": int(time.time())}
    head["model"] = body.get("model", "fake")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)

    async def send(delta: dict[str, Any], finish: str | None = None) -> None:
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    content = str(message.get("content") or "")
    await send({"role": "assistant", "content": ""})
    for i in range(0, len(content), 24):
        if i:
            await asyncio.sleep(delay)
        await send({"content": content[i : i + 24]})
    for index, call in enumerate(message.get("tool_calls") or []):
        await send({"tool_calls": [{"index": index, **call}]})
    await send({}, "tool_calls" if message.get("tool_calls") else "stop")
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    await response.write(f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def answer(messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The scripted model: a `#call` in a fresh user message becomes that tool call, else text."""
    user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = str(user.get("content") or "")
    found = TAG.search(content)
    tag = found.group(1) if found else "-"
    wanted = CALL.search(content)
    if wanted and messages[-1].get("role") == "user":
        call = {
            "id": f"call_{next(_ids)}",
            "type": "function",
            "function": {"name": wanted.group(1), "arguments": wanted.group(2)},
        }
        return tag, {"role": "assistant", "content": None, "tool_calls": [call]}
    # `#long`: a few sentences, so a streamed answer takes several chunks.
    return tag, {"role": "assistant", "content": ANSWER if wanted or "#long" in content else "ok"}


# -- admin -------------------------------------------------------------------------------------------


async def config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    changes = await request.json()
    state.latency = float(changes.get("latency", state.latency))
    state.record = bool(changes.get("record", state.record))
    state.streaming = bool(changes.get("streaming", state.streaming))
    state.token_delay = float(changes.get("token_delay", state.token_delay))
    return web.json_response({"latency": state.latency, "record": state.record, "streaming": state.streaming})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "replies": state.replies,
            "posts": state.posts,
            "notices": state.notices,
            "updates": state.updates,
            "model_time": state.model_time,
            "first_text": state.first_text,
            "first_token": state.first_token,
            "model_calls": state.model_calls,
            "model_now": state.model_now,
            "model_peak": state.model_peak,
            "counts": state.counts,
        }
    )


async def _until(state: State, wait: float, ready: Any) -> Any:
    """Long-poll: `ready()` once it is truthy, or None after `wait` seconds."""
    deadline = time.monotonic() + wait
    while not (found := ready()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            await asyncio.wait_for(state.changed.wait(), remaining)
        except TimeoutError:
            return None
    return found


def _wait(request: web.Request) -> float:
    return min(float(request.query.get("wait", "10")), 60.0)


async def card(request: web.Request) -> web.Response:
    state, thread = request.app[STATE], request.query["thread"]
    found = await _until(state, _wait(request), lambda: state.cards.get(thread))
    return web.json_response(found or {}, status=200 if found else 404)


async def update(request: web.Request) -> web.Response:
    state, ts = request.app[STATE], request.query["ts"]
    found = await _until(state, _wait(request), lambda: state.updates.get(ts))
    return web.json_response({"at": found}, status=200 if found else 404)


async def reply(request: web.Request) -> web.Response:
    state, thread = request.app[STATE], request.query["thread"]
    found = await _until(state, _wait(request), lambda: state.replies.get(thread))
    return web.json_response({"at": found}, status=200 if found else 404)


async def wait_replies(request: web.Request) -> web.Response:
    state, count = request.app[STATE], int(request.query["n"])
    await _until(state, _wait(request), lambda: len(state.replies) >= count)
    return web.json_response({"replies": len(state.replies)})


async def requests_view(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].requests)


def make_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE] = State()
    app.router.add_route("*", "/api/{method}", slack)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/admin/config", config)
    app.router.add_post("/admin/reset", reset)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/admin/card", card)
    app.router.add_get("/admin/update", update)
    app.router.add_get("/admin/reply", reply)
    app.router.add_get("/admin/wait_replies", wait_replies)
    app.router.add_get("/admin/requests", requests_view)
    return app


async def main(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=2048)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(bound, flush=True)
    # The orchestrator kills this process; stdin closing (orchestrator gone) also ends it.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fake Slack Web API + fake OpenAI for the benchmark")
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
