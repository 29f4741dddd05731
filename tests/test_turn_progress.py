"""What a turn shows while it runs (the core's LiveReply events), platform-neutral: each tool call's progress in
the tool's own words, running then done / failed / waiting for approval, and the model's text exactly as it
ends up in the reply, through the real openai client streaming from the fake server."""

from __future__ import annotations

from bot.core.loop import ROUND_BREAK
from bot.types import ApprovalRequest, Progress, ProgressState, TextReply
from tests.support.fake_openai import call, calls, text
from tests.support.harness import STAFF, VIEWER, Harness
from tests.support.recording import RecordingLive, RecordingResponder
from tests.support.scripts import SCHEDULE

SEARCH = {"location": "austin", "property_type": None, "min_price": None, "max_price": None, "min_bedrooms": None}


def steps(live: RecordingLive) -> list[tuple[str, ProgressState]]:
    return [(e.title, e.state) for e in live.events if isinstance(e, Progress)]


async def take(h: Harness, user: str, words: str) -> tuple[list[object], RecordingLive]:
    responder = RecordingResponder()
    msg = h.incoming(user, words)
    async with responder.live(msg) as live:
        result = await h.agent.take_turn(msg, live)
    return list(result.replies), live


async def test_tool_progress_comes_before_the_text_and_the_text_is_the_reply(make_harness: object) -> None:
    h: Harness = await make_harness()  # type: ignore[operator]
    h.fake.push(
        calls(call("search_properties", SEARCH), call("get_property", {"property_id": "p-1001"}), content="Looking."),
        text("P-1001 is a 2-bedroom on South Congress."),
    )
    replies, live = await take(h, STAFF, "homes in austin?")
    assert steps(live) == [
        ("Searching properties in austin…", ProgressState.RUNNING),
        ("Looking up P-1001…", ProgressState.RUNNING),
        ("Searching properties in austin…", ProgressState.DONE),
        ("Looking up P-1001…", ProgressState.DONE),
    ]
    last_step = max(i for i, e in enumerate(live.events) if isinstance(e, Progress))
    answer_starts = next(i for i, e in enumerate(live.events) if isinstance(e, str) and i > last_step)
    assert answer_starts > last_step
    [reply] = replies
    assert isinstance(reply, TextReply)
    assert reply.text == "Looking." + ROUND_BREAK + "P-1001 is a 2-bedroom on South Congress." == live.streamed
    assert reply.tools == ["search_properties", "get_property"]


async def test_a_refused_call_shows_as_failed_and_a_risky_one_as_waiting(make_harness: object) -> None:
    h: Harness = await make_harness()  # type: ignore[operator]
    h.fake.push(calls(call("schedule_maintenance", SCHEDULE)))  # the turn ends at the approval request
    replies, live = await take(h, STAFF, "get a plumber to P-1001")
    assert steps(live) == [
        ("Scheduling maintenance for P-1001…", ProgressState.RUNNING),
        ("Waiting for approval", ProgressState.WAITING),
    ]
    assert any(isinstance(r, ApprovalRequest) for r in replies)

    h.fake.push(calls(call("schedule_maintenance", SCHEDULE)), text("You may not do that."))
    _, viewer = await take(h, VIEWER, "get a plumber to P-1001")
    [(_, running), (_, failed)] = steps(viewer)
    assert (running, failed) == (ProgressState.RUNNING, ProgressState.FAILED)
    assert [e.detail for e in viewer.events if isinstance(e, Progress)][-1] == (
        "The user is not permitted to use schedule_maintenance."
    )


async def test_no_live_no_stream(make_harness: object) -> None:
    h: Harness = await make_harness()  # type: ignore[operator]
    h.fake.push(text("Plain."))
    assert [r.text for r in await h.say(STAFF, "hi") if isinstance(r, TextReply)] == ["Plain."]
    assert "stream" not in h.fake.requests[-1]  # a terminal chat or a test: one plain call
