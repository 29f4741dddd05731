"""The model is told the person's date and time, in their time zone where the platform says it (Slack users.info
`tz`, Teams `localTimezone` / clientInfo), else UTC, at the head of their message (never in the system prompt, whose
cached prefix must not change from turn to turn). "Tomorrow" then means the person's tomorrow: for someone in
Auckland who writes at 00:30 on Tuesday, it is Wednesday, though in UTC it is still Monday."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from tests.support.cards import posted_card
from tests.support.fake_connector import StartTeams, message
from tests.support.fake_openai import FakeOpenAI, call, calls, last_message, text
from tests.support.fake_slack import MakeSlackBot, mention
from tools.db import Database

# Monday 2026-12-07 11:30 UTC is Tuesday 2026-12-08 00:30 in Auckland (UTC+13 in December).
SENT = dt.datetime(2026, 12, 7, 11, 30, tzinfo=dt.UTC)
STAMP = re.compile(r"^\[(\w+) (\d{4}-\d\d-\d\d) (\d\d:\d\d) ([\w/+-]+)\] ")


def tomorrow_for_the_person(request: dict[str, Any]) -> dict[str, Any]:
    """A model that does what a good one does: reads the date at the head of the message, schedules for the day
    after it, then reports."""
    last = last_message(request)
    if last["role"] == "user":
        found = STAMP.match(str(last["content"]))
        assert found, last["content"]
        tomorrow = dt.date.fromisoformat(found.group(2)) + dt.timedelta(days=1)
        args = {"property_id": "P-1001", "issue_type": "plumbing", "priority": "high", "description": "Sink leaks"}
        return calls(call("schedule_maintenance", {**args, "preferred_date": tomorrow.isoformat()}))
    return text("Waiting for approval.")


async def test_slack_the_model_reads_the_persons_date_and_tomorrow_is_theirs(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.zones["USTAFF"] = "Pacific/Auckland"
    fake_openai.default = tomorrow_for_the_person
    event = {**mention("USTAFF", "get a plumber to P-1001 tomorrow"), "ts": f"{SENT.timestamp():.6f}"}
    await bot.send_event(event)
    card = await posted_card(bot, event["ts"])
    [request] = fake_openai.requests[:1]
    asked = request["messages"][-1]["content"]
    assert asked == "[Tuesday 2026-12-08 00:30 Pacific/Auckland] Sam Staff: get a plumber to P-1001 tomorrow"
    # In UTC it is still Monday: a model told UTC would have asked for the 8th.
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.arguments["preferred_date"] == "2026-12-09"
    # The card shows it (and, whatever the hour this runs at, its expiry in UTC, which may well be the 8th).
    assert "2026-12-09" in json.dumps(card.post.args["blocks"])
    system = request["messages"][0]
    assert system["role"] == "system" and "2026" not in system["content"]  # the cached prefix does not move


async def test_slack_a_person_without_a_time_zone_is_told_utc(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    fake_openai.default = lambda request: text("ok")
    await bot.send_event({**mention("USTAFF", "what day is it?"), "ts": f"{SENT.timestamp():.6f}"})
    await bot.slack.wait_for("chat.postMessage")
    asked = fake_openai.requests[0]["messages"][-1]["content"]
    assert asked.startswith("[Monday 2026-12-07 11:30 UTC] Sam Staff: what day is it?")


async def test_teams_the_activitys_time_and_local_time_zone_reach_the_model(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.default = lambda request: text("ok")
    body = message(rig.connector, "what day is it?")
    body.update(timestamp="2026-12-07T11:30:00.000Z", localTimezone="Pacific/Auckland")
    assert (await rig.post(body))[0] == 200
    await rig.connector.wait_for(rig.connector.messages)
    asked = rig.harness.fake.requests[0]["messages"][-1]["content"]
    assert asked == "[Tuesday 2026-12-08 00:30 Pacific/Auckland] Mona Manager: what day is it?"
