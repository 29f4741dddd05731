"""GET /metrics reflects what happened: a turn with a tool call, an approval, a duplicate delivery and a
rate-limited message each move their counters. The registry is process-wide, so the test compares the
exposition text before and after rather than absolute values."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.app.server import create_app
from bot.types import ApprovalRequest, DecisionOutcome, TextReply
from tests.support.fake_openai import call, calls, last_message, text
from tests.support.harness import MANAGER, STAFF, VIEWER, Harness
from tests.support.scripts import SCHEDULE

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: TestClient[Any, Any]) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def model(request: dict[str, Any]) -> dict[str, Any]:
    if last_message(request)["role"] != "user":
        return text("done")
    words = last_message(request)["content"]
    if "schedule" in words:
        return calls(call("schedule_maintenance", SCHEDULE))
    if "search" in words:
        return calls(call("search_properties", {"location": "Austin"}))
    return text("hello")


async def test_metrics_move_with_turns_tools_approvals_duplicates_and_rate_limits(make_harness: Any) -> None:
    h: Harness = await make_harness(rate_limit_user_per_minute=2)
    h.fake.default = model
    runtime = h.process
    app = await create_app(runtime, mounts=[], run_worker=False)
    async with TestClient(TestServer(app)) as client:
        before = await scrape(client)

        assert isinstance((await h.say(MANAGER, "search Austin"))[0], TextReply)
        [request] = [r for r in await h.say(STAFF, "schedule the dishwasher") if isinstance(r, ApprovalRequest)]
        pending = await scrape(client)
        assert value(pending, "propbot_pending_approvals") == 1
        assert (await h.decide(request.approval.id, MANAGER)).outcome is DecisionOutcome.DONE

        again = h.incoming(VIEWER, "hi")
        await h.agent.handle(again)
        assert await h.agent.handle(again) == []  # the redelivery is dropped
        await h.say(VIEWER, "hi again")
        refused = await h.say(VIEWER, "one too many")
        assert "faster than propbot allows" in refused[0].text  # type: ignore[union-attr]

        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("propbot_turns_total", platform="slack", outcome="ok") == 4
    assert moved("propbot_turns_total", platform="slack", outcome="rate_limited") == 1
    searched = moved("propbot_tool_calls_total", tool="search_properties", outcome="ok") + moved(
        "propbot_tool_calls_total", tool="search_properties", outcome="cached"
    )
    assert searched == 1
    assert moved("propbot_tool_calls_total", tool="schedule_maintenance", outcome="ok") == 1
    assert moved("propbot_tool_latency_seconds_count", tool="search_properties") == 1
    assert moved("propbot_approvals_total", outcome="requested") == 1
    assert moved("propbot_approvals_total", outcome="approved") == 1
    assert value(after, "propbot_pending_approvals") == 0
    assert moved("propbot_duplicate_deliveries_total", platform="slack") == 1
    assert moved("propbot_rate_limited_total", scope="user") == 1
    # search (2 calls), schedule (1), its follow-up after approval (1), two greetings (1 each)
    assert moved("propbot_model_latency_seconds_count") == 6
    assert moved("propbot_model_tokens_total", kind="completion") == 60  # the fake reports 10 per answer
    assert moved("propbot_model_tokens_total", kind="prompt") > 0
