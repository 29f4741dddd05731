"""Slack Web API answers that are not Slack's JSON (a proxy's text/plain 403, a load balancer's HTML 502):
logged and handled like any failed call, never a 500 that Slack would keep redelivering."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support.fake_openai import text, unstamped
from tests.support.fake_slack import BOT_TOKEN, MakeSlackBot, mention
from tests.support.waiting import eventually
from tools.db import Database

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


async def test_a_plain_text_users_info_answer_still_lets_the_mention_through(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = await slack_bots(sqlite_database)
    # Bolt's own auth.test comes first; let it through so the proxy page meets our users.info lookup.
    assert (await bot.send_event({"type": "emoji_changed", "subtype": "add", "name": "x"})).status == 200
    bot.slack.fail_next_raw("users.info", 403, "Forbidden", "text/plain")
    fake_openai.push(text("answered without a name"))
    sent = await bot.send_event(mention("USTAFF", "hello"))
    assert sent.status == 200, sent
    [reply] = await bot.slack.wait_for("chat.postMessage")
    assert "answered without a name" in str(reply.args["blocks"])
    # The model saw the words without a display name: the lookup failed and the turn went on.
    assert unstamped(fake_openai.requests[0]["messages"][-1]["content"]) == "hello"
    assert "slack users.info failed: HTTP 403" in caplog.text
    assert BOT_TOKEN not in caplog.text


async def test_an_html_502_on_post_is_logged_with_its_status_and_the_server_keeps_serving(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = await slack_bots(sqlite_database)
    bot.slack.fail_next_raw("chat.postMessage", 502, HTML_502, "text/html")
    fake_openai.push(text("lost behind the proxy"), text("second answer"))
    assert (await bot.send_event(mention("USTAFF", "first"))).status == 200
    await eventually(lambda: "slack chat.postMessage failed: HTTP 502" in caplog.text)
    assert "Traceback" not in caplog.text and "502 Bad Gateway" not in caplog.text
    # The next message is answered as usual.
    assert (await bot.send_event(mention("USTAFF", "second"))).status == 200
    await bot.slack.wait_for("chat.postMessage", 2)
    await bot.idle()
    assert "second answer" in str(bot.slack.calls_to("chat.postMessage")[-1].args["blocks"])
