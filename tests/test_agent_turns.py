"""The agent loop end to end: real Redis, real database, the real AsyncOpenAI client against a fake server."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.core.history import TokenCounter
from bot.types import ApprovalRequest, TextReply
from tests.support.fake_openai import Fault, call, calls, last_message, offered_tools, text, tool_results, unstamped
from tests.support.harness import MANAGER, STAFF, VIEWER, Harness

AUSTIN_2BR = {
    "location": "Austin, TX",
    "property_type": None,
    "min_price": None,
    "max_price": None,
    "min_bedrooms": 2,
}


def only_text(replies: list[Any]) -> str:
    assert len(replies) == 1 and isinstance(replies[0], TextReply), replies
    return replies[0].text


async def test_scripted_turn_runs_search_on_the_database_and_remembers_it(make_harness: Any) -> None:
    h: Harness = await make_harness()
    seen: dict[str, Any] = {}

    def summarise(request: dict[str, Any]) -> dict[str, Any]:
        result = tool_results(request)[0]
        seen["result"] = result
        ids = ", ".join(p["id"] for p in result["data"]["properties"][:3])
        return text(f"Found {result['data']['count']} places: {ids}")

    h.fake.push(calls(call("search_properties", AUSTIN_2BR)), summarise)
    answer = only_text(await h.say(MANAGER, "Find 2-bedroom places in Austin"))

    properties = seen["result"]["data"]["properties"]
    assert seen["result"]["ok"] is True and properties
    assert all(p["city"] == "Austin" and p["bedrooms"] >= 2 for p in properties)
    assert answer.startswith(f"Found {seen['result']['data']['count']} places: {properties[0]['id']}")

    h.fake.push(text("You asked about Austin."))
    await h.say(MANAGER, "What did I ask before?")
    contents = [unstamped(m.get("content")) for m in h.fake.requests[-1]["messages"]]
    assert "Find 2-bedroom places in Austin" in contents
    assert answer in contents
    assert h.fake.violations == []


async def test_search_presentation_travels_with_the_answer(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.push(calls(call("search_properties", AUSTIN_2BR)), text("Here they are."))
    replies = await h.say(MANAGER, "2 bedrooms in Austin?")
    assert isinstance(replies[0], TextReply)
    presentation = replies[0].presentations[0]
    assert "Austin" in presentation.title and presentation.items


async def test_channels_are_isolated_and_survive_a_restart(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.push(text("noted A"), text("noted B"))
    await h.say(MANAGER, "secret of channel A", channel="CA")
    await h.say(MANAGER, "secret of channel B", channel="CB")
    request_b = json.dumps(h.fake.requests[-1]["messages"])
    assert "secret of channel A" not in request_b

    restarted = await h.another_process()  # a new process: new store client, same Redis
    h.fake.push(text("ok"))
    await restarted.agent.handle(h.incoming(MANAGER, "again in A", channel="CA"))
    request_a = json.dumps(h.fake.requests[-1]["messages"])
    assert "secret of channel A" in request_a and "noted A" in request_a
    assert "secret of channel B" not in request_a


async def test_viewer_is_not_offered_risky_tools_and_a_forced_call_is_refused(make_harness: Any) -> None:
    h: Harness = await make_harness()
    args = {
        "property_id": "P-1001",
        "issue_type": "plumbing",
        "priority": "high",
        "description": "Leaking sink",
        "preferred_date": None,
    }
    h.fake.push(calls(call("schedule_maintenance", args)), lambda r: text(json.dumps(tool_results(r))))
    replies = await h.say(VIEWER, "Schedule a plumber for P-1001")
    assert "schedule_maintenance" not in offered_tools(h.fake.requests[0])
    assert "search_properties" in offered_tools(h.fake.requests[0])
    refusal = json.loads(only_text(replies))[0]
    assert refusal["ok"] is False and "not permitted" in refusal["error"]
    assert not any(isinstance(r, ApprovalRequest) for r in replies)
    assert await h.store.pending_approvals() == []


async def test_bad_arguments_invalid_json_and_unknown_tool_are_fed_back_then_corrected(make_harness: Any) -> None:
    h: Harness = await make_harness()
    errors: list[str] = []

    def collect(request: dict[str, Any]) -> dict[str, Any]:
        errors.extend(r["error"] for r in tool_results(request))
        return calls(call("search_properties", AUSTIN_2BR))

    h.fake.push(
        calls(
            call("search_properties", {"location": "Austin", "min_bedrooms": "many"}),
            call("search_properties", '{"location": "Austin",'),
            call("find_houses", {"city": "Austin"}),
        ),
        collect,
        lambda r: text(f"count={tool_results(r)[0]['data']['count']}"),
    )
    answer = only_text(await h.say(MANAGER, "Austin places"))
    assert len(errors) == 3
    assert "min_bedrooms" in errors[0]
    assert "not valid JSON" in errors[1]
    assert "Unknown tool 'find_houses'" in errors[2]
    assert answer.startswith("count=") and answer != "count=0"
    assert h.fake.violations == []


async def test_rate_limit_with_retry_after_then_success(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.push(Fault(429, headers={"Retry-After": "1"}), text("hello after the pause"))
    started = time.monotonic()
    assert only_text(await h.say(MANAGER, "hi")) == "hello after the pause"
    assert time.monotonic() - started >= 0.9  # the Retry-After pause was honoured
    assert len(h.fake.requests) == 2


async def test_model_down_gives_a_clear_error_within_the_deadline_and_history_stays_valid(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness(openai_deadline=3.0, openai_max_attempts=10)
    h.fake.default = lambda r: Fault(500)
    started = time.monotonic()
    replies = await h.say(MANAGER, "anyone there?")
    elapsed = time.monotonic() - started
    assert isinstance(replies[0], TextReply) and replies[0].is_error
    assert "cannot be reached" in replies[0].text and "Traceback" not in replies[0].text
    assert elapsed < 3.0 + 5.0  # deadline plus at most one call's timeout
    assert len(h.fake.requests) >= 2  # it did retry

    h.fake.default = None
    h.fake.push(text("back"))
    assert only_text(await h.say(MANAGER, "now?")) == "back"
    assert h.fake.violations == []


async def test_two_hundred_turns_stay_under_the_token_budget_and_valid(make_harness: Any) -> None:
    budget = 2500  # ten tools' schemas are about 1,750 tokens of it
    h: Harness = await make_harness(history_token_budget=budget)
    counter = TokenCounter()

    def model(request: dict[str, Any]) -> dict[str, Any]:
        last = last_message(request)
        if last["role"] == "user" and "search" in last["content"]:
            return calls(call("search_properties", AUSTIN_2BR), call("get_property", {"property_id": "P-1001"}))
        return text("ok " + "x" * 40)

    h.fake.default = model
    for turn in range(200):
        await h.say(MANAGER, f"turn {turn}: " + ("search again please" if turn % 3 == 0 else "hello"))
    assert h.fake.violations == []
    for request in h.fake.requests:
        assert counter.messages(request["messages"]) + counter.tools(request.get("tools", [])) <= budget
    assert "turn 199" in json.dumps(h.fake.requests[-1]["messages"])


async def test_memory_store_serves_a_single_process(make_harness: Any) -> None:
    h: Harness = await make_harness(redis=False)
    h.fake.push(text("one"), text("two"))
    await h.say(STAFF, "first")
    await h.say(STAFF, "second")
    assert "first" in json.dumps(h.fake.requests[-1]["messages"])


async def test_a_message_delivered_twice_is_answered_once(make_harness: Any) -> None:
    # Slack retries an event it did not see acknowledged in time; Teams may resend an activity: same delivery id.
    h: Harness = await make_harness()
    h.fake.push(text("once"))
    msg = h.incoming(MANAGER, "hello")
    assert [r.text for r in await h.agent.handle(msg) if isinstance(r, TextReply)] == ["once"]
    assert await h.agent.handle(msg) == []  # dropped before it reaches the model
    assert len(h.fake.requests) == 1
