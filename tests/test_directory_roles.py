"""Roles from the directory: the permissions file's `groups:` entries (Slack user groups, Entra ID groups, e-mail
addresses and domains), resolved in order (own user entry; groups and e-mail, their union; the workspace's `*`; the
default role), with memberships from the fake Slack's usergroups.users.list and users.info and the group-changed
events, through the real server, Bolt and slack_sdk."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.core.permissions import parse_permissions
from bot.errors import PermissionsError
from bot.types import ApprovalStatus, Membership
from tests.support.cards import post_card
from tests.support.fake_connector import StartTeams, TeamsRig, message
from tests.support.fake_graph import CLIENT_ID, CLIENT_SECRET, FakeGraph
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import MakeSlackBot, SlackBot, click, mention
from tests.support.fake_slack_directory import group_updated, members_changed
from tests.support.harness import PERMISSIONS_YAML
from tests.support.scripts import requests_with_key
from tests.support.waiting import eventually
from tools.db import Database

GROUPS = """\
groups:
  "slack:T1:usergroup:SSTAFF": staff
  "slack:T1:usergroup:SMANAGERS": manager
  "teams:tenant-1:group:g-managers": manager
  "email:*@acme-pm.com": staff
  "email:ops.lead@acme-pm.com": manager
"""
RULES = PERMISSIONS_YAML + GROUPS
VIEWER_TOOLS = {"search_properties", "get_property", "list_maintenance_requests"}
STAFF_TOOLS = {"search_properties", "get_property", "list_maintenance_requests", "schedule_maintenance"}


def test_the_order_is_own_entry_then_groups_and_e_mail_together_then_the_default() -> None:
    rules = parse_permissions(RULES)
    managers = Membership(frozenset({"slack:T1:usergroup:SMANAGERS"}))
    # Their own user entry wins over any group.
    assert rules.roles_of("slack:T1:USTAFF", managers) == ["staff"]
    # Groups and e-mail add up.
    both = Membership(frozenset({"slack:T1:usergroup:SSTAFF"}), "ops.lead@ACME-PM.com")
    assert rules.roles_of("slack:T1:UNEW", both) == ["staff", "manager"]
    assert rules.may_approve("slack:T1:UNEW", "schedule_maintenance", "slack:T1:USTAFF", both)[0]
    # Nothing matches: the default role.
    assert rules.roles_of("slack:T1:UNEW", Membership(frozenset(), "someone@else.com")) == ["viewer"]
    assert rules.roles_of("slack:T1:UNEW") == ["viewer"]


@pytest.mark.parametrize(
    ("address", "staff"),
    [
        ("jo@acme-pm.com", True),
        ("JO@Acme-PM.com", True),
        ("jo@sub.acme-pm.com", False),  # a subdomain is another domain
        ("jo@acme-pm.com.evil.example", False),
        ("jo@evil.example@acme-pm.com", False),  # not an address
        (None, False),
    ],
)
def test_e_mail_domains_match_whole_addresses_only(address: str | None, staff: bool) -> None:
    rules = parse_permissions(RULES)
    assert (rules.roles_of("teams:tenant-1:x", Membership(frozenset(), address)) == ["staff"]) is staff


def test_a_group_entry_of_no_known_kind_or_an_undefined_role_is_refused_with_its_line() -> None:
    with pytest.raises(PermissionsError, match=r"line 18: .*'slack:T1:S1' is not 'slack:<team>:usergroup:<id>'"):
        parse_permissions(PERMISSIONS_YAML + 'groups:\n  "slack:T1:S1": staff\n')
    with pytest.raises(PermissionsError, match=r"line 18: group 'email:\*@x.com' has role 'boss'"):
        parse_permissions(PERMISSIONS_YAML + 'groups:\n  "email:*@x.com": boss\n')


def offered(fake: FakeOpenAI) -> set[str]:
    return {t["function"]["name"] for t in fake.requests[-1].get("tools") or []}


async def ask_as(bot: SlackBot, fake: FakeOpenAI, user: str, asked: int) -> set[str]:
    fake.push({"role": "assistant", "content": "ok"})
    await bot.send_event(mention(user, "what can you do?"))
    await eventually(lambda: len(fake.requests) >= asked)
    return offered(fake)


async def test_a_slack_user_group_gives_its_role_and_taking_someone_out_takes_it_away(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=RULES)
    bot.slack.users["UNEW"] = "Nell New"
    bot.slack.usergroups = {"SSTAFF": ["UNEW", "UOTHER"], "SMANAGERS": []}
    assert await ask_as(bot, fake_openai, "UNEW", 1) >= STAFF_TOOLS

    bot.slack.usergroups["SSTAFF"] = ["UOTHER"]
    await bot.send_event(members_changed("SSTAFF", "T1", added=[], removed=["UNEW"]))
    assert await ask_as(bot, fake_openai, "UNEW", 2) == {
        "search_properties",
        "get_property",
        "list_maintenance_requests",
    }

    # Back in, by the event that lists the whole group.
    bot.slack.usergroups["SSTAFF"] = ["UOTHER", "UNEW"]
    await bot.send_event(group_updated("SSTAFF", "T1", ["UOTHER", "UNEW"]))
    assert await ask_as(bot, fake_openai, "UNEW", 3) >= STAFF_TOOLS
    asked = [c.args.get("usergroup") for c in bot.slack.calls_to("usergroups.users.list")]
    # Each group listed once, and the changed one again after each change only.
    assert asked == ["SSTAFF", "SMANAGERS", "SSTAFF", "SSTAFF"]


async def test_a_verified_e_mail_domain_gives_its_role(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=RULES)
    bot.slack.users.update({"UNEW": "Nell New", "UOPS": "Olly Ops"})
    bot.slack.emails.update({"UNEW": "nell@acme-pm.com", "UOPS": "ops.lead@acme-pm.com"})
    assert await ask_as(bot, fake_openai, "UNEW", 1) >= STAFF_TOOLS
    assert "onboard_tenant" in await ask_as(bot, fake_openai, "UOPS", 2)  # manager, by the exact address


async def test_an_approval_requested_through_a_group_is_refused_at_execution_once_they_left_it(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=RULES)
    bot.slack.users["UNEW"] = "Nell New"
    bot.slack.usergroups = {"SSTAFF": ["UNEW"], "SMANAGERS": []}
    card = await post_card(bot, fake_openai, user="UNEW")
    bot.slack.usergroups["SSTAFF"] = []
    await bot.send_event(members_changed("SSTAFF", "T1", added=[], removed=["UNEW"]))
    await bot.send_click(click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts))

    async def refused() -> bool:
        stored = await bot.runtime.store.get_approval(card.approval_id)
        return stored is not None and stored.status is ApprovalStatus.FAILED

    await eventually(refused)
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.result is not None
    assert stored.result["error"] == "Nell New is no longer allowed to use schedule maintenance; nothing was done."
    assert await requests_with_key(sqlite_database, card.approval_id) == 0


async def test_slack_down_gives_no_one_a_group_role_and_a_known_membership_lasts_only_its_bound(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.core.directory")
    bot = await slack_bots(sqlite_database, permissions=RULES, directory_max_age=300.0)
    now = [1_000_000.0]
    bot.runtime.gate.memberships.clock = lambda: now[0]
    bot.slack.users.update({"UNEW": "Nell New", "UNEVER": "Nia Never"})
    bot.slack.usergroups = {"SSTAFF": ["UNEW", "UNEVER"], "SMANAGERS": []}
    assert await ask_as(bot, fake_openai, "UNEW", 1) >= STAFF_TOOLS  # looked up while Slack answers

    # Slack goes down; the group list this process kept is dropped by a change that names no one.
    await bot.send_event(members_changed("SSTAFF", "T1", added=[], removed=[]))
    for _ in range(20):
        bot.slack.fail_next("usergroups.users.list", status=500, retry_after=None, error="internal_error")
    # Never looked up, and Slack down: no group role.
    viewer = VIEWER_TOOLS
    assert await ask_as(bot, fake_openai, "UNEVER", 2) == viewer
    # Known from before, past the refresh but within the bound: kept.
    now[0] += 120
    assert await ask_as(bot, fake_openai, "UNEW", 3) >= STAFF_TOOLS
    # Past the bound: dropped, though Slack still does not answer.
    now[0] += 200
    assert await ask_as(bot, fake_openai, "UNEW", 4) == viewer
    said = [r.getMessage() for r in caplog.records]
    assert any("keeping its membership from 120 s ago" in m for m in said)
    assert any("slack:T1:UNEW failed" in m and "no group or e-mail role until it answers" in m for m in said)


# -- Teams: Entra ID groups and e-mail through Microsoft Graph ---------------------------------------------------


def graph_settings(fake: FakeGraph) -> dict[str, Any]:
    return {
        "graph_client_id": CLIENT_ID,
        "graph_client_secret": CLIENT_SECRET,
        "graph_base_url": fake.graph_url,
        "graph_authority": fake.authority,
        "permissions": RULES,
    }


async def teams_tools(rig: TeamsRig, user: str, asked: int) -> set[str]:
    rig.harness.fake.push({"role": "assistant", "content": "ok"})
    await rig.post(message(rig.connector, "what can you do?", user=user, name=user, conversation=f"a:{user}"))
    await eventually(lambda: len(rig.harness.fake.requests) >= asked)
    return offered(rig.harness.fake)


async def test_an_entra_id_group_nested_or_not_and_a_graph_e_mail_give_their_roles(
    start_teams: StartTeams, fake_graph: FakeGraph
) -> None:
    fake_graph.groups = {"aad-new": ["g-parent-of-nothing", "g-managers"]}  # two pages of one group each
    fake_graph.users = {"aad-new": {"mail": "", "userPrincipalName": "new@contoso.com"}}
    fake_graph.users["aad-mail"] = {"mail": "mo@acme-pm.com", "userPrincipalName": "mo@contoso.onmicrosoft.com"}
    rig = await start_teams(**graph_settings(fake_graph))
    assert "onboard_tenant" in await teams_tools(rig, "aad-new", 1)  # manager, through the group
    assert await teams_tools(rig, "aad-mail", 2) >= STAFF_TOOLS  # staff, through the verified domain
    assert "onboard_tenant" not in offered(rig.harness.fake)
    [first, *_] = fake_graph.token_requests
    assert first["grant_type"] == ["client_credentials"] and first["scope"] == [
        f"http://{fake_graph.graph_url.split('/')[2]}/.default"
    ]
    paged = [p for p in fake_graph.graph_requests if "transitiveMemberOf" in p and "aad-new" in p]
    assert len(paged) == 2  # followed @odata.nextLink


async def test_graph_down_gives_no_one_a_group_role(
    start_teams: StartTeams, fake_graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.core.directory")
    fake_graph.groups = {"aad-new": ["g-managers"]}
    fake_graph.down = True
    rig = await start_teams(**graph_settings(fake_graph))
    assert await teams_tools(rig, "aad-new", 1) == VIEWER_TOOLS
    said = [r.getMessage() for r in caplog.records]
    assert any("directory look-up of teams:tenant-1:aad-new failed (Graph answered 503)" in m for m in said)
