"""Whom propbot answers on Slack: its own workspace (and, on Enterprise Grid, its own org), plus the teams and
orgs in SLACK_ALLOWED_TEAMS; and everyone it answers keeps the role of their *own* team, in events and clicks.

Real Bolt on a real aiohttp server, signed requests, the fake Slack Web API (auth.test, users.info) and the
fake model; nothing inside propbot or Bolt is replaced.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.types import ApprovalStatus
from tests.support.cards import has_buttons, post_card
from tests.support.fake_openai import FakeOpenAI, offered_tools, text
from tests.support.fake_slack import MakeSlackBot, SlackBot, click, event_body, mention
from tests.support.scripts import requests_with_key
from tests.support.waiting import eventually
from tools.db import Database

PERMISSIONS = """\
default_role: viewer
roles:
  viewer: {tools: [search_properties, get_property, list_maintenance_requests]}
  staff: {tools: [search_properties, get_property, list_maintenance_requests, schedule_maintenance]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "slack:T1:*": manager
  "slack:T1:USTAFF": staff
  "slack:TPARTNER:UPARTNERBOSS": manager
"""
SCHEDULE = "schedule_maintenance"


def from_team(user: str, team: str, words: str = "what can I do?") -> dict[str, Any]:
    """An event of `user`, whose own workspace is `team`, in the host's shared channel C1 (Slack Connect or
    an org-shared channel): `user_team` and `source_team` name the user's side, as Slack sends them."""
    event = mention(user, words)
    event.update(user_team=team, source_team=team, team=team)
    return event


async def send_shared(bot: SlackBot, event: dict[str, Any]) -> None:
    assert (await bot.send_json({**event_body(event), "is_ext_shared_channel": True})).status == 200


@pytest.fixture
def slack_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The adapter's INFO lines, where it says whom it ignored and why."""
    caplog.set_level(logging.INFO, logger="adapters.slack.listeners")
    return caplog


async def ignored(caplog: pytest.LogCaptureFixture, principal: str) -> None:
    await eventually(lambda: f"{principal} is not in SLACK_ALLOWED_TEAMS" in caplog.text)


async def test_a_partner_org_listed_by_its_enterprise_id_is_answered_and_keeps_its_own_role(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI, slack_log: pytest.LogCaptureFixture
) -> None:
    """Events name a user's workspace, never their Grid org: users.info says which org they belong to."""
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS, slack_allowed_teams="EPARTNER")
    fake_openai.default = lambda _request: text("hi")
    bot.slack.orgs.update(UPARTNER="EPARTNER", USTRANGER="ESTRANGER")
    await send_shared(bot, from_team("USTRANGER", "TSTRANGER"))  # an org that is not listed
    await ignored(slack_log, "slack:TSTRANGER:USTRANGER")
    await send_shared(bot, from_team("UPARTNER", "TPARTNER"))
    await bot.slack.wait_for("chat.postMessage")
    [request] = fake_openai.requests  # the stranger's message never reached the model
    # The host's `slack:T1:*` is manager; the partner has only the default role.
    assert SCHEDULE not in offered_tools(request) and "search_properties" in offered_tools(request)


async def test_the_other_workspaces_of_the_installations_grid_org_are_answered_by_default(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI, slack_log: pytest.LogCaptureFixture
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS)
    bot.slack.enterprise_id = "E1"  # auth.test: this workspace (T1) belongs to the Grid org E1
    fake_openai.default = lambda _request: text("hi")
    bot.slack.orgs["USIBLING"] = "E1"
    await send_shared(bot, from_team("UPARTNER", "TPARTNER"))  # Slack Connect, and nothing is listed
    await ignored(slack_log, "slack:TPARTNER:UPARTNER")
    await send_shared(bot, from_team("USIBLING", "T2"))  # a colleague from the org's workspace T2
    await bot.slack.wait_for("chat.postMessage")
    [request] = fake_openai.requests
    assert SCHEDULE not in offered_tools(request)  # T2 is not T1: the colleague does not get `slack:T1:*`


def partner_click(user: str, team: str, card_channel: str, card_ts: str, action: str = "propbot_approve") -> Any:
    return lambda approval_id: {
        **click(user, action, approval_id, card_channel, card_ts),
        "team": {"id": team, "domain": "partner"},  # a Slack Connect click names the clicker's own team
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "is_enterprise_install": False,
        "enterprise": None,
    }


async def test_a_slack_connect_click_is_decided_with_the_clickers_own_role_in_the_hosts_workspace(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS, slack_allowed_teams="TPARTNER")
    card = await post_card(bot, fake_openai)
    # A partner without an entry of their own: `slack:T1:*` (manager) is the host's, not theirs.
    clerk = partner_click("UPARTNERCLERK", "TPARTNER", card.channel, card.ts)(card.approval_id)
    assert (await bot.send_click(clerk)).status == 200
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert note.args["user"] == "UPARTNERCLERK" and "not allowed to approve" in note.args["text"]
    assert has_buttons(bot, card)
    # The partner's own manager approves: the approval (bound to the host's workspace, where the card is)
    # is found for a click arriving through the host's installation, whoever's team the clicker is in.
    boss = partner_click("UPARTNERBOSS", "TPARTNER", card.channel, card.ts)(card.approval_id)
    assert (await bot.send_click(boss)).status == 200
    await eventually(lambda: not has_buttons(bot, card))
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.DONE
    assert stored.decided_by == "slack:TPARTNER:UPARTNERBOSS"
    assert await requests_with_key(sqlite_database, card.approval_id) == 1


async def test_a_click_from_a_team_that_is_not_allowed_changes_nothing(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI, slack_log: pytest.LogCaptureFixture
) -> None:
    """Even with a manager's entry: the team allow-list comes first, and the clicker is told, privately."""
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS)
    card = await post_card(bot, fake_openai)
    boss = partner_click("UPARTNERBOSS", "TPARTNER", card.channel, card.ts)(card.approval_id)
    assert (await bot.send_click(boss)).status == 200
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert note.args["user"] == "UPARTNERBOSS" and "not allowed to use propbot" in note.args["text"]
    assert "slack:TPARTNER:UPARTNERBOSS is not in SLACK_ALLOWED_TEAMS" in slack_log.text
    await bot.idle()
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING and has_buttons(bot, card)
