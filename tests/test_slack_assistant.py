"""The assistant side panel through the real server and Bolt: suggested prompts by role, status while a turn
runs, the thread's title, a history of its own per thread, and approvals inside a panel thread. Payloads follow
Slack's documentation of `assistant_thread_started` and of message events in the app's DM."""

from __future__ import annotations

from typing import Any

from tests.support.cards import has_buttons, posted_card
from tests.support.fake_openai import FakeOpenAI, last_message, text, unstamped
from tests.support.fake_slack import TEAM, MakeSlackBot, click, direct_message, message_ts
from tests.support.peek import history_of
from tests.support.scripts import requests_with_key, schedule_then_report
from tests.support.waiting import eventually
from tools.db import Database


def thread_started(user: str, channel: str = "D1") -> dict[str, Any]:
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "context": {"channel_id": "C1", "team_id": TEAM, "enterprise_id": None},
            "channel_id": channel,
            "thread_ts": message_ts(),
        },
        "event_ts": message_ts(),
    }


async def test_suggested_prompts_follow_the_role(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    assert (await bot.send_event(thread_started("USTAFF"))).status == 200
    [staff] = await bot.slack.wait_for("assistant.threads.setSuggestedPrompts")
    assert (await bot.send_event(thread_started("UVIEWER", channel="D2"))).status == 200
    [_, viewer] = await bot.slack.wait_for("assistant.threads.setSuggestedPrompts", 2)
    staff_titles = [p["title"] for p in staff.args["prompts"]]
    viewer_titles = [p["title"] for p in viewer.args["prompts"]]
    assert "Schedule maintenance…" in staff_titles and "Cancel a request…" in staff_titles
    assert "Find a property" in viewer_titles and "Schedule maintenance…" not in viewer_titles
    assert all(p["message"] for p in staff.args["prompts"]) and len(staff_titles) <= 4
    assert staff.args["channel_id"] == "D1" and staff.args["thread_ts"]


async def test_a_panel_thread_streams_sets_and_clears_status_and_keeps_its_own_history(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.streaming = True
    seen: list[list[str]] = []

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        seen.append([unstamped(m["content"]) for m in request["messages"] if m["role"] == "user"])
        return text("Answer to: " + last_message(request)["content"])

    fake_openai.default = answer
    first, second = message_ts(), message_ts()
    await bot.send_event(direct_message("USTAFF", "Which homes are free in Austin?", thread_ts=first))
    await bot.slack.wait_for("chat.stopStream")
    await bot.send_event(direct_message("USTAFF", "What is open at P-1002?", thread_ts=second))
    await bot.slack.wait_for("chat.stopStream", 2)
    await bot.send_event(direct_message("USTAFF", "And in Dallas?", thread_ts=first))
    await bot.slack.wait_for("chat.stopStream", 3)

    # Each thread is its own conversation: the third question sees the first, never the second.
    assert seen[2] == ["Sam Staff: Which homes are free in Austin?", "Sam Staff: And in Dallas?"]
    assert len(await history_of(bot.runtime.store, f"slack:{TEAM}:D1:{first}")) == 4
    assert len(await history_of(bot.runtime.store, f"slack:{TEAM}:D1:{second}")) == 2
    starts = bot.slack.calls_to("chat.startStream")
    assert [s.args["thread_ts"] for s in starts] == [first, second, first]
    assert "recipient_user_id" not in starts[0].args  # a DM needs no recipient

    await eventually(lambda: len([s for s in bot.slack.statuses if s[2] == ""]) >= 3)
    for thread in (first, second):
        shown = [status for channel, ts, status in bot.slack.statuses if ts == thread]
        assert shown[0] != "" and shown[-1] == ""  # set while the turn ran, cleared at the end
    titles = bot.slack.calls_to("assistant.threads.setTitle")
    assert sorted((t.args["thread_ts"], t.args["title"]) for t in titles) == sorted(
        [(first, "Which homes are free in Austin?"), (second, "What is open at P-1002?")]
    )  # once per thread, from its first question
    assert bot.slack.calls_to("reactions.add") == []  # the panel shows status, not a reaction
    assert bot.slack.violations == []


async def test_an_approval_in_a_panel_thread_works_like_anywhere_else(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    bot.slack.streaming = True
    fake_openai.default = schedule_then_report
    thread = message_ts()
    await bot.send_event(direct_message("USTAFF", "get a plumber to P-1001, sink leaks", thread_ts=thread))
    card = await posted_card(bot, thread)
    assert card.channel == "D1"
    await bot.send_click(click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts))
    await eventually(lambda: not has_buttons(bot, card))
    await bot.slack.wait_for("chat.stopStream", 2)
    assert await requests_with_key(database, card.approval_id) == 1
    follow_up = bot.slack.calls_to("chat.startStream")[-1]
    assert follow_up.args["thread_ts"] == thread
    history = await history_of(bot.runtime.store, f"slack:{TEAM}:D1:{thread}")
    assert any(m.get("tool_call_id") == f"call_approval_{card.approval_id}" for m in history)
