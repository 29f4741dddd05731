"""CHANNEL_MEMORY: a channel thread is a conversation of its own (the default), or a channel is one.

Slack: top-level mentions in one channel start separate conversations that run at once; a mention inside a
thread (thread_ts) continues that thread's. Teams: a channel post's thread (conversation id
`...;messageid=<root>`) is the conversation. `channel` restores one history per channel on both."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.fake_connector import TENANT, StartTeams, message
from tests.support.fake_openai import FakeOpenAI, last_message, text
from tests.support.fake_slack import TEAM, MakeSlackBot, mention
from tests.support.peek import history_of
from tools.db import Database


def questions(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def test_two_mentions_in_one_channel_are_two_conversations_answered_at_once(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    both_at_model = asyncio.Event()
    overlapped: list[bool] = []

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        if len(fake_openai.requests) >= 2:
            both_at_model.set()
        if len(overlapped) < 2:
            # One conversation per channel would hold the second turn behind this one's lock: it never arrives.
            try:
                await asyncio.wait_for(both_at_model.wait(), 5)
                overlapped.append(True)
            except TimeoutError:
                overlapped.append(False)
        return text("Answer to: " + last_message(request)["content"])

    fake_openai.default = answer
    first, second = mention("USTAFF", "Which homes are free in Austin?"), mention("UMANAGER", "What is open at P-1002?")
    assert (await bot.send_event(first)).status == 200
    assert (await bot.send_event(second)).status == 200
    await bot.slack.wait_for("chat.postMessage", 2)
    assert overlapped == [True, True]

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
    posts = bot.slack.calls_to("chat.postMessage")
    assert sorted(p.args["thread_ts"] for p in posts) == sorted([first["ts"], second["ts"], first["ts"]])


async def test_channel_memory_channel_keeps_one_conversation_per_channel(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, channel_memory="channel")
    fake_openai.default = lambda request: text("Answer to: " + last_message(request)["content"])
    await bot.send_event(mention("USTAFF", "Which homes are free in Austin?"))
    await bot.slack.wait_for("chat.postMessage")
    await bot.send_event(mention("UMANAGER", "What is open at P-1002?"))
    await bot.slack.wait_for("chat.postMessage", 2)
    assert questions(fake_openai.requests[1]) == [
        "Sam Staff: Which homes are free in Austin?",
        "Maria Manager: What is open at P-1002?",
    ]
    assert len(await history_of(bot.runtime.store, f"slack:{TEAM}:C1")) == 4


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
