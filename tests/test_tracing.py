"""OpenTelemetry: a turn's model and tool calls are children of its span, all tagged with the conversation;
off by default; a real OTLP/HTTP export reaches a collector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.config import load_settings
from bot.observability import tracing
from bot.types import ApprovalRequest, TextReply
from tests.support.fake_openai import Fault, call, calls, last_message, text
from tests.support.harness import MANAGER, STAFF, Harness
from tests.support.scripts import SCHEDULE
from tests.support.waiting import eventually


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.setup_tracing(None, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.force_flush()  # the batch processor exports from its own thread
    return list(exporter.get_finished_spans())


def named(all_spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in all_spans if s.name == name]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def model(request: dict[str, Any]) -> dict[str, Any]:
    if last_message(request)["role"] == "user":
        return calls(call("search_properties", {"location": "Austin"}))
    return text("two homes in Austin")


async def test_a_turn_with_a_tool_call_makes_three_linked_spans(make_harness: Any, spans: InMemorySpanExporter) -> None:
    h: Harness = await make_harness()
    h.fake.default = model
    msg = h.incoming(MANAGER, "what is in Austin?", channel="C-trace")
    replies = await h.agent.handle(msg)
    assert isinstance(replies[0], TextReply) and replies[0].text == "two homes in Austin"

    all_spans = finished(spans)
    [turn] = named(all_spans, "propbot.turn")
    model_calls = named(all_spans, "propbot.model_call")
    [tool] = named(all_spans, "propbot.tool_call")
    assert len(model_calls) == 2  # the tool call, then the answer

    assert turn.parent is None and turn.context is not None
    for child in [*model_calls, tool]:
        assert child.parent is not None and child.context is not None
        assert child.parent.span_id == turn.context.span_id
        assert child.context.trace_id == turn.context.trace_id
        assert attrs(child)["propbot.conversation"] == msg.conversation.key

    turn_attrs = attrs(turn)
    assert turn_attrs["propbot.conversation"] == "slack:T1:C-trace"
    assert turn_attrs["propbot.platform"] == "slack"
    assert turn_attrs["propbot.user"] == tracing.user_hash(MANAGER)
    assert MANAGER not in str(turn_attrs) and "UMANAGER" not in str(turn_attrs)

    first = attrs(model_calls[0])
    assert first["propbot.model"] == "fake-model" and first["propbot.attempts"] == 1
    assert int(first["propbot.prompt_tokens"]) > 0 and first["propbot.completion_tokens"] == 10
    assert attrs(tool)["propbot.tool"] == "search_properties"
    assert attrs(tool)["propbot.outcome"] == "ok"


async def test_a_failed_model_call_and_an_approved_tool_are_traced(
    make_harness: Any, spans: InMemorySpanExporter
) -> None:
    h: Harness = await make_harness(openai_max_attempts=2)
    h.fake.push(Fault(500), Fault(500))
    await h.say(MANAGER, "hello?", channel="C-fail")
    [failed] = named(finished(spans), "propbot.model_call")
    assert attrs(failed)["propbot.error"] == "unavailable" and attrs(failed)["propbot.attempts"] == 2

    h.fake.default = lambda request: (
        calls(call("schedule_maintenance", SCHEDULE)) if last_message(request)["role"] == "user" else text("ok")
    )
    [request] = [r for r in await h.say(STAFF, "schedule it", channel="C-ok") if isinstance(r, ApprovalRequest)]
    await h.decide(request.approval.id, MANAGER)
    [scheduled] = named(finished(spans), "propbot.tool_call")
    assert attrs(scheduled)["propbot.tool"] == "schedule_maintenance"
    assert attrs(scheduled)["propbot.outcome"] == "ok"
    assert attrs(scheduled)["propbot.conversation"] == "slack:T1:C-ok"


async def test_tracing_is_off_without_an_endpoint(make_harness: Any) -> None:
    assert tracing.setup_tracing(load_settings(_env_file=None).otel_exporter_otlp_endpoint) is False
    with tracing.span("propbot.turn", platform="slack") as span:
        span.set(outcome="ok")  # a no-op, never an error
    h: Harness = await make_harness()
    h.fake.push(text("hi"))
    assert isinstance((await h.say(MANAGER, "hello"))[0], TextReply)


@pytest.fixture
async def collector(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A stand-in OTLP/HTTP collector on loopback: it records what the exporter posts."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    received: list[web.Request] = []
    bodies: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        received.append(request)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()
        assert all(bodies)


async def test_spans_reach_an_otlp_http_collector(collector: tuple[str, list[web.Request]]) -> None:
    endpoint, received = collector
    settings = load_settings(_env_file=None, otel_exporter_otlp_endpoint=endpoint + "/")
    assert tracing.setup_tracing(settings.otel_exporter_otlp_endpoint)
    try:
        with tracing.span("propbot.turn", platform="teams"):
            pass
    finally:
        # The exporter posts with `requests` from a thread; the collector answers on this loop meanwhile.
        await asyncio.to_thread(tracing.shutdown_tracing)
    await eventually(lambda: received, within=10)
    assert received[0].content_type == "application/x-protobuf"
