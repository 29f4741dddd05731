"""Maintenance-team notifications: a scheduling approved in a channel posts one notice to the channel configured
for the property's city, even when the click is delivered twice; the team's Mark done changes the request, and a
viewer's click is refused. Teams: the channel is remembered when propbot hears from it, and its notice's button
works the same way. MAINTENANCE_CHANNELS is parsed strictly."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.core.team_channels import ChannelsError, TeamChannels
from bot.types import TeamNotice
from tests.support.cards import has_buttons, posted_card
from tests.support.fake_connector import StartTeams, execute, message
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import MakeSlackBot, click, mention
from tests.support.scripts import schedule_then_report
from tests.support.waiting import eventually
from tools.db import Database
from tools.tables import MaintenanceRequest

PERMISSIONS = """\
default_role: viewer
roles:
  viewer: {tools: [search_properties]}
  staff: {tools: [search_properties, schedule_maintenance]}
  maintenance: {tools: [list_maintenance_requests, update_maintenance_status]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:USTAFF": staff
  "slack:T1:UTECH": maintenance
  "teams:tenant-1:aad-manager": manager
  "teams:tenant-1:aad-staff": staff
  "teams:tenant-1:aad-tech": maintenance
"""


def notice(city: str = "Austin", property_id: str = "P-1001") -> TeamNotice:
    return TeamNotice(
        key="MR-1:scheduled", request_id="MR-1", property_id=property_id, city=city, status="scheduled", title="t"
    )


def test_routes_prefer_the_property_then_the_city_then_the_default() -> None:
    routes = TeamChannels.parse("austin=slack:C0AUS;teams:19:a@thread.tacv2, P-1001=slack:C0P1, *=slack:C0ALL")
    assert routes.targets(notice()) == [("slack", "C0P1")]
    assert routes.targets(notice(property_id="P-1002")) == [("slack", "C0AUS"), ("teams", "19:a@thread.tacv2")]
    assert routes.targets(notice(city="Denver", property_id="P-1011")) == [("slack", "C0ALL")]
    assert TeamChannels.parse("").targets(notice()) == []
    for wrong in ("Austin", "Austin=C0AUS", "Austin=email:x", "=slack:C1"):
        with pytest.raises(ChannelsError, match="MAINTENANCE_CHANNELS"):
            TeamChannels.parse(wrong)


async def status_of(db: Database, request_id: str) -> str:
    async with db.session() as session:
        return str(
            (
                await session.execute(select(MaintenanceRequest.status).where(MaintenanceRequest.id == request_id))
            ).scalar_one()
        )


async def test_slack_one_notice_per_change_even_when_the_click_comes_twice_and_mark_done_is_permission_checked(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS, maintenance_channels="Austin=slack:C0MAINT")
    fake_openai.default = schedule_then_report
    event = mention("USTAFF", "get a plumber to P-1001, the sink leaks")
    await bot.send_event(event)
    card = await posted_card(bot, event["ts"])
    approve = click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts)
    await bot.send_click(approve)
    await bot.send_click(approve)  # Slack delivers the click again
    await eventually(lambda: not has_buttons(bot, card))
    [posted] = await bot.slack.wait_for("chat.postMessage", where=lambda c: c.args["channel"] == "C0MAINT")
    actions = next(b for b in posted.args["blocks"] if b["type"] == "actions")["elements"]
    request_id = actions[0]["value"]
    assert [a["action_id"] for a in actions] == ["propbot_mark_in_progress", "propbot_mark_done"]
    assert "Austin" in json.dumps(posted.args["blocks"]) and request_id.startswith("MR-")
    await bot.dispatcher.sweep_expired()  # a sweep after the decision finds nothing more to announce

    ts = next(ts for (ch, ts) in bot.slack.messages if ch == "C0MAINT")
    await bot.send_click(click("UVIEWER", "propbot_mark_done", request_id, "C0MAINT", ts))  # a viewer
    [refused] = await bot.slack.wait_for("chat.postEphemeral", where=lambda c: c.args["user"] == "UVIEWER")
    assert "may not update" in refused.args["text"] and await status_of(sqlite_database, request_id) == "scheduled"

    await bot.send_click(click("UTECH", "propbot_mark_done", request_id, "C0MAINT", ts))
    [updated] = await bot.slack.wait_for("chat.update", where=lambda c: c.args["channel"] == "C0MAINT")
    assert await status_of(sqlite_database, request_id) == "completed"
    assert "marked done" in json.dumps(updated.args["blocks"])
    assert "(<@UTECH>)" in json.dumps(updated.args["blocks"])  # who marked it, as a mention, not escaped text
    assert not any(b["type"] == "actions" for b in updated.args["blocks"])  # done: no more buttons
    notices = [c for c in bot.slack.calls_to("chat.postMessage") if c.args["channel"] == "C0MAINT"]
    assert len(notices) == 1  # once, though the click came twice and the sweeper ran
    assert bot.slack.violations == []


async def test_teams_a_channel_propbot_heard_from_gets_the_notice_and_its_buttons_work(start_teams: StartTeams) -> None:
    channel = "19:maint@thread.tacv2"
    rig = await start_teams(permissions=PERMISSIONS, maintenance_channels=f"Austin=teams:{channel}")
    # Someone mentions propbot in the team's channel: it now knows where that channel is.
    rig.harness.fake.default = schedule_then_report
    hello = message(
        rig.connector,
        "hello",
        conversation=f"{channel};messageid=1",
        conversation_type="channel",
        mention=True,
        user="aad-tech",
        name="Tia Tech",
    )
    assert (await rig.post(hello))[0] == 200
    await rig.connector.wait_for(rig.connector.messages)

    body = message(rig.connector, "schedule a plumber at P-1001", user="aad-staff", name="Sam Staff")
    assert (await rig.post(body))[0] == 200
    [posted] = await rig.connector.wait_for(
        lambda: [m for m in rig.connector.messages() if m.cards and m.conversation_id == "a:personal-chat-1"]
    )
    approval_id = posted.cards[0]["actions"][0]["data"]["approval_id"]
    approve = execute(rig.connector, "propbot.approve", approval_id, card_id=posted.returned_id)
    assert (await rig.post(approve))[0] == 200
    [notice_posted] = await rig.connector.wait_for(
        lambda: [m for m in rig.connector.messages() if m.conversation_id == channel and m.cards]
    )
    [card] = notice_posted.cards
    mark_done = next(a for a in card["actions"] if a["title"] == "Mark done")
    request_id = mark_done["data"]["request_id"]
    assert mark_done["verb"] == "propbot.mark"

    tap = execute(
        rig.connector, "propbot.mark", "", card_id="x", user="aad-staff", name="Sam Staff", conversation=channel
    )
    tap["value"]["action"]["data"] = mark_done["data"]
    status, refused = await rig.post(tap)
    assert status == 200 and "may not update" in json.dumps(refused)
    tap = execute(
        rig.connector, "propbot.mark", "", card_id="x", user="aad-tech", name="Tia Tech", conversation=channel
    )
    tap["value"]["action"]["data"] = mark_done["data"]
    status, done = await rig.post(tap)
    assert status == 200 and done["type"] == "application/vnd.microsoft.card.adaptive"
    assert "marked done" in json.dumps(done["value"]) and "actions" not in done["value"]
    assert await status_of(rig.harness.db, request_id) == "completed"
