"""Slack events through the real HTTP server, real Bolt and slack_sdk, the fake Slack and fake model."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.support.fake_openai import call, calls, text, unstamped
from tests.support.fake_slack import (
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    Call,
    MakeSlackBot,
    direct_message,
    event_body,
    mention,
)
from tests.support.waiting import eventually
from tools.db import Database

SEARCH = {"location": "Austin, TX", "property_type": None, "min_price": None, "max_price": None, "min_bedrooms": 2}


def script_search(fake_push: Any) -> None:
    fake_push(calls(call("search_properties", SEARCH)), text("Found **2-bedroom** homes in Austin @channel"))


def blocks_text(c: Call) -> str:
    return json.dumps(c.args.get("blocks"))


async def test_mention_gets_one_threaded_reply_with_search_results_as_blocks(
    slack_bots: MakeSlackBot, database: Database, fake_openai: Any
) -> None:
    bot = await slack_bots(database)
    script_search(fake_openai.push)
    event = mention("USTAFF", "find 2 bed homes in Austin")
    sent = await bot.send_event(event)
    assert sent.status == 200

    [reply] = await bot.slack.wait_for("chat.postMessage")
    assert reply.args["channel"] == "C1" and reply.args["thread_ts"] == event["ts"]
    assert reply.authorized
    rendered = blocks_text(reply)
    assert "*2-bedroom*" in rendered and "1208 S Congress Ave" in rendered and "P-1001" in rendered
    assert "@channel" not in rendered and "@channel" not in reply.args["text"]
    # The model saw the user's words without the bot mention, and with the user's display name.
    first = fake_openai.requests[0]["messages"][-1]["content"]
    assert unstamped(first) == "Sam Staff: find 2 bed homes in Austin"
    # The working indicator came and went on the user's message.
    await bot.slack.wait_for("reactions.remove")
    assert [c.args["timestamp"] for c in bot.slack.calls_to("reactions.add")] == [event["ts"]]
    assert bot.slack.reactions == set()
    await bot.idle()
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert bot.slack.violations == [] and fake_openai.violations == []


async def test_dm_gets_one_reply_in_the_dm(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any
) -> None:
    bot = await slack_bots(sqlite_database)
    fake_openai.push(text("Hello Sam"))
    event = direct_message("USTAFF", "hi there")
    assert (await bot.send_event(event)).status == 200
    [reply] = await bot.slack.wait_for("chat.postMessage")
    assert reply.args["channel"] == "D1" and "thread_ts" not in reply.args
    assert "Hello Sam" in blocks_text(reply)
    threaded = direct_message("USTAFF", "and in a thread", thread_ts="1600000000.000001")
    fake_openai.push(text("threaded answer"))
    await bot.send_event(threaded)
    replies = await bot.slack.wait_for("chat.postMessage", 2)
    assert replies[1].args["thread_ts"] == "1600000000.000001"


async def test_bot_edits_deletions_and_channel_messages_are_ignored(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any
) -> None:
    bot = await slack_bots(sqlite_database)
    ignored = [
        direct_message(BOT_USER, "my own message"),
        direct_message("USTAFF", "from a bot", bot_id="B2"),
        direct_message("USTAFF", "edited", subtype="message_changed"),
        direct_message("USTAFF", "gone", subtype="message_deleted"),
        {**direct_message("USTAFF", "a channel message"), "channel_type": "channel", "channel": "C9"},
        {**mention("USTAFF", "in a DM"), "channel": "D1"},  # arrives again as message.im
    ]
    for event in ignored:
        assert (await bot.send_event(event)).status == 200
    fake_openai.push(text("only this one"))
    await bot.send_event(direct_message("USTAFF", "a real one"))
    await bot.slack.wait_for("chat.postMessage")
    await bot.idle()
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize("problem", ["bad signature", "stale timestamp", "no signature"])
async def test_unverified_requests_get_401_and_nothing_happens(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any, problem: str
) -> None:
    bot = await slack_bots(sqlite_database)
    fake_openai.default = lambda _: text("should never be asked")
    body = json.dumps(event_body(mention("USTAFF", "hello")))
    if problem == "bad signature":
        sent = await bot.send_raw(body, "application/json", secret="not-the-secret")
    elif problem == "stale timestamp":
        sent = await bot.send_raw(body, "application/json", timestamp=int(time.time()) - 301)
    else:
        sent = await bot.send_raw(body, "application/json", headers={"X-Slack-Signature": ""})
    assert sent.status == 401
    await bot.idle()
    assert fake_openai.requests == []
    assert [c.method for c in bot.slack.calls if c.method != "auth.test"] == []


async def test_redelivered_event_is_answered_once(
    slack_bots: MakeSlackBot, database: Database, fake_openai: Any
) -> None:
    bot = await slack_bots(database)
    fake_openai.latency = 0.3
    fake_openai.default = lambda _: text("answered")
    event = mention("USTAFF", "hello")
    first = await bot.send_event(event, event_id="EvSAME")
    retries = [
        await bot.send_event(
            event, event_id="EvSAME", headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}
        )
        for n in (1, 2)
    ]
    assert [first.status, *(r.status for r in retries)] == [200, 200, 200]
    await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("reactions.remove")
    await bot.idle()
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(fake_openai.requests) == 1
    assert bot.slack.reactions == set()


async def test_ack_does_not_wait_for_a_slow_model(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any
) -> None:
    bot = await slack_bots(sqlite_database, openai_timeout=10.0, openai_deadline=20.0)
    await bot.send_event({"type": "team_join", "user": {"id": "U9"}})  # warm up: auth.test is cached
    fake_openai.latency = 5.0
    fake_openai.push(text("finally"))
    sent = await bot.send_event(mention("USTAFF", "slow question"))
    assert sent.status == 200
    assert sent.seconds < 0.5, f"the ack took {sent.seconds:.2f}s"
    [reply] = await bot.slack.wait_for("chat.postMessage", within=15)
    assert "finally" in blocks_text(reply)


async def test_rate_limited_post_is_retried_after_retry_after(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    fake_openai.push(text("worth the wait"))
    await bot.send_event(mention("USTAFF", "hello"))
    attempts = await bot.slack.wait_for("chat.postMessage", 2, within=10)
    assert attempts[1].at - attempts[0].at >= 1.0  # Retry-After honoured
    assert "worth the wait" in blocks_text(attempts[1])
    await bot.idle()
    assert len(bot.slack.calls_to("chat.postMessage")) == 2


async def test_slack_errors_are_logged_with_method_and_code_never_the_token(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await slack_bots(sqlite_database)
    bot.slack.fail_next("chat.postMessage", status=200, retry_after=None, error="channel_not_found")
    fake_openai.push(text("lost"))
    await bot.send_event(mention("USTAFF", "hello"))
    await eventually(lambda: "slack chat.postMessage failed: channel_not_found" in caplog.text)
    assert BOT_TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text


async def test_malformed_and_unknown_requests_get_a_clean_answer(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = await slack_bots(sqlite_database)
    fake_openai.default = lambda _: text("should never be asked")
    for body in ("{not json", "[1, 2]", '{"type": "event_callback", "event": "x"}'):
        sent = await bot.send_raw(body, "application/json")
        assert sent.status == 400, (body, sent)
    assert "malformed body" in caplog.text
    unknown = await bot.send_event({"type": "emoji_changed", "subtype": "add", "name": "party"})
    assert unknown.status == 200
    assert "ignored a Slack event of type 'emoji_changed'" in caplog.text
    health = await bot.session.get(bot.url + "/healthz")
    assert health.status == 200  # still serving
    await bot.idle()
    assert fake_openai.requests == []
    assert [c.method for c in bot.slack.calls if c.method not in ("auth.test",)] == []


async def test_socket_mode_replaces_the_http_route_and_does_not_block_start(
    slack_bots: MakeSlackBot, sqlite_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app_token = "xapp-1-test-app-token-do-not-log"
    bot = await slack_bots(sqlite_database, slack_signing_secret=None, slack_app_token=app_token)
    # The fake refuses the app token (as Slack does a revoked one): the SDK keeps retrying in the
    # background while the server serves, and HTTP events are not accepted in this mode.
    [opened] = await bot.slack.wait_for("apps.connections.open")
    assert not opened.authorized
    sent = await bot.send_event(mention("USTAFF", "over http"))
    assert sent.status in (404, 405)
    health = await bot.session.get(bot.url + "/healthz")
    assert health.status == 200
    assert "Socket Mode connecting" in caplog.text and app_token not in caplog.text
