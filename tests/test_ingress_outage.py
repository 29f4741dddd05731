"""Redis down when a message arrives: the platform is told to deliver it again, the user is told once, and
the redelivery after Redis returns is answered."""

from __future__ import annotations

from typing import Any

from tests.support.fake_connector import StartTeams, message
from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import FakeSlack, MakeSlackBot, mention
from tests.support.redis_server import RedisServer
from tools.db import Database

RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}


async def test_slack_event_during_an_outage_is_refused_then_answered_on_redelivery(
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    redis_server: RedisServer,
) -> None:
    bot = await slack_bots(sqlite_database)
    event = mention("USTAFF", "anything open at P-1001?")
    redis_server.stop()
    try:
        first = await bot.send_event(event, "Ev-outage-1")
        again = await bot.send_event(event, "Ev-outage-1", headers=RETRY)
        assert first.status >= 500 and again.status >= 500  # Slack delivers it again
        [notice] = await fake_slack.wait_for("chat.postMessage")
        assert "temporarily unavailable" in str(notice.args.get("text"))
        assert "Traceback" not in str(notice.args)
    finally:
        redis_server.start()
    fake_openai.push(text("Nothing open at P-1001."))
    redelivered = await bot.send_event(event, "Ev-outage-1", headers={**RETRY, "X-Slack-Retry-Num": "2"})
    assert redelivered.status == 200
    posted = await fake_slack.wait_for("chat.postMessage", 2, within=15)
    assert "Nothing open at P-1001." in str(posted[-1].args.get("text"))
    assert len(fake_openai.requests) == 1


async def test_teams_activity_during_an_outage_gets_503_then_is_answered(
    start_teams: StartTeams, redis_server: RedisServer
) -> None:
    rig = await start_teams()
    activity: dict[str, Any] = message(rig.connector, "hello during the outage")
    redis_server.stop()
    try:
        status, _ = await rig.post(activity)
        assert status == 503
        [notice] = await rig.connector.wait_for(rig.connector.messages)
        assert "temporarily unavailable" in notice.body["text"]
    finally:
        redis_server.start()
    rig.harness.fake.push(text("hello again"))
    status, _ = await rig.post(activity)
    assert status == 200
    replies = await rig.connector.wait_for(rig.connector.messages, 2)
    assert replies[-1].body["text"] == "hello again"
