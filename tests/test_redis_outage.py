"""Redis goes away mid-run: users get plain words, nothing is lost, service resumes without a restart."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app.server import create_app
from bot.types import DecisionOutcome, TextReply
from tests.support.fake_openai import text
from tests.support.harness import MANAGER, Harness
from tests.support.redis_server import RedisServer


async def test_turn_during_an_outage_says_unavailable_then_recovers(
    make_harness: Any, redis_server: RedisServer
) -> None:
    h: Harness = await make_harness()
    h.fake.push(text("before"))
    await h.say(MANAGER, "before the outage")
    redis_server.stop()
    try:
        replies = await h.say(MANAGER, "during the outage")
        assert len(replies) == 1 and isinstance(replies[0], TextReply) and replies[0].is_error
        assert "temporarily unavailable" in replies[0].text and "Traceback" not in replies[0].text
        decision = await h.decide("some-approval-id", MANAGER)
        assert decision.outcome is DecisionOutcome.UNAVAILABLE
    finally:
        redis_server.start()
    h.fake.push(text("after"))
    replies = await h.say(MANAGER, "after the outage")
    assert isinstance(replies[0], TextReply) and replies[0].text == "after"
    assert len(h.fake.requests) == 2  # the model was never called during the outage


async def test_healthz_reports_the_outage_and_the_recovery(make_harness: Any, redis_server: RedisServer) -> None:
    h: Harness = await make_harness()
    runtime = h.process
    app = await create_app(runtime, mounts=[], run_worker=False)
    async with TestClient(TestServer(app)) as client:
        ok = await client.get("/healthz")
        assert ok.status == 200 and (await ok.json())["store"] == "ok"
        redis_server.stop()
        try:
            down = await client.get("/healthz")
            body = await down.json()
            assert down.status == 503 and body["store"] == "unreachable" and body["database"] == "ok"
        finally:
            redis_server.start()
        again = await client.get("/healthz")
        assert again.status == 200
        metrics = await client.get("/metrics")
        assert metrics.status == 200 and "propbot_turns_total" in await metrics.text()
