"""CHANNEL_MEMORY: a channel is one conversation, its threads included (the default), or each thread is one.

With channel memory a second top-level mention sees the first (question and answer), and the turns of one channel
run at the same time, each exchange landing whole in the order the turns finished; replies still go to the thread
where the question was asked. `thread` makes a Slack thread (thread_ts) or a Teams channel thread (conversation id
`...;messageid=<root>`) a conversation of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.fake_connector import TENANT, StartTeams, message
from tests.support.fake_openai import FakeOpenAI, last_message, text, unstamped
from tests.support.fake_slack import TEAM, MakeSlackBot, mention
from tests.support.peek import history_of
from tools.db import Database


def questions(request: dict[str, Any]) -> list[str]:
    return [unstamped(m["content"]) for m in request["messages"] if m["role"] == "user"]


async def test_a_second_top_level_mention_sees_the_first_question_and_its_answer(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)  # the default: one memory per channel
    fake_openai.default = lambda request: text("Answer to: " + unstamped(last_message(request)["content"]))
    first = mention("USTAFF", "List open requests for P-1001")
    await bot.send_event(first)
    await bot.slack.wait_for("chat.postMessage")
    second = mention("UMANAGER", "Cancel the second one")
    await bot.send_event(second)
    await bot.slack.wait_for("chat.postMessage", 2)
    asked = fake_openai.requests[1]["messages"]
    assert [unstamped(m["content"]) for m in asked if m["role"] in ("user", "assistant")] == [
        "Sam Staff: List open requests for P-1001",
        "Answer to: Sam Staff: List open requests for P-1001",
        "Maria Manager: Cancel the second one",
    ]
    assert len(await history_of(bot.runtime.store, f"slack:{TEAM}:C1")) == 4
    # Each answer still goes to the thread of the mention it answers.
    posts = bot.slack.calls_to("chat.postMessage")
    assert [p.args["thread_ts"] for p in posts] == [first["ts"], second["ts"]]


async def test_ten_mentions_in_one_channel_run_at_once_and_each_lands_whole(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    all_at_model = asyncio.Event()
    waited: list[bool] = []

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        if len(fake_openai.requests) >= 10:
            all_at_model.set()
        # A channel whose turns ran one after another would never have ten requests at the model at once.
        try:
            await asyncio.wait_for(all_at_model.wait(), 10)
            waited.append(True)
        except TimeoutError:
            waited.append(False)
        return text("Answer to: " + unstamped(last_message(request)["content"]))

    fake_openai.default = answer
    mentions = [mention("USTAFF", f"question {n}") for n in range(10)]
    for event in mentions:
        assert (await bot.send_event(event)).status == 200
    await bot.slack.wait_for("chat.postMessage", 10, within=30)
    assert waited == [True] * 10
    history = await history_of(bot.runtime.store, f"slack:{TEAM}:C1")
    assert len(history) == 20
    # Whole units, in the order they finished: each question directly followed by its own answer.
    for asked, answered in zip(history[::2], history[1::2], strict=True):
        assert asked["role"] == "user" and answered["content"] == "Answer to: " + unstamped(asked["content"])
    assert sorted(unstamped(m["content"]) for m in history[::2]) == sorted(
        f"Sam Staff: question {n}" for n in range(10)
    )
    assert fake_openai.violations == []


async def test_channel_memory_thread_makes_each_thread_a_conversation_of_its_own(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, channel_memory="thread")
    fake_openai.default = lambda request: text("Answer to: " + unstamped(last_message(request)["content"]))
    first, second = mention("USTAFF", "Which homes are free in Austin?"), mention("UMANAGER", "What is open at P-1002?")
    await bot.send_event(first)
    await bot.slack.wait_for("chat.postMessage")
    await bot.send_event(second)
    await bot.slack.wait_for("chat.postMessage", 2)
    assert questions(fake_openai.requests[1]) == ["Maria Manager: What is open at P-1002?"]
    # A mention inside the first thread continues the first conversation only.
    await bot.send_event(mention("USTAFF", "And in Dallas?", thread_ts=first["ts"]))
    await bot.slack.wait_for("chat.postMessage", 3)
    assert questions(fake_openai.requests[2]) == [
        "Sam Staff: Which homes are free in Austin?",
        "Sam Staff: And in Dallas?",
    ]
    assert len(await history_of(bot.runtime.store, f"slack:{TEAM}:C1:{first['ts']}")) == 4
    assert len(await history_of(bot.runtime.store, f"slack:{TEAM}:C1:{second['ts']}")) == 2
    assert await history_of(bot.runtime.store, f"slack:{TEAM}:C1") == []


async def test_teams_channel_threads_are_conversations_unless_channel_memory_is_channel(
    start_teams: StartTeams,
) -> None:
    channel = "19:general@thread.tacv2"
    for memory, key in (
        ("thread", f"teams:{TENANT}:{channel}:1700000000002"),
        ("channel", f"teams:{TENANT}:{channel}"),
    ):
        rig = await start_teams(channel_memory=memory)
        rig.harness.fake.push(text("Hello"))
        threaded = f"{channel};messageid=1700000000002"
        body = message(rig.connector, "hello", conversation=threaded, conversation_type="channel", mention=True)
        assert (await rig.post(body))[0] == 200
        await rig.connector.wait_for(rig.connector.messages)
        assert len(await history_of(rig.harness.store, key)) == 2, memory
        rig.connector.calls.clear()
