"""Doors closed by configuration: no Teams route unless Teams is configured, permissions that fail closed,
and Slack Connect partners who get their own team's role, not the host's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.runtime import load_permission_rules
from tests.support.fake_openai import FakeOpenAI, offered_tools, text
from tests.support.fake_slack import MakeSlackBot, event_body, mention
from tests.support.harness import TEST_OPENAI_KEY
from tests.support.processes import free_port, run_command
from tools.db import Database


async def test_a_slack_only_deployment_does_not_serve_teams(
    slack_bots: MakeSlackBot, sqlite_database: Database
) -> None:
    bot = await slack_bots(sqlite_database, every_mount=True)
    activity = {"type": "message", "serviceUrl": "http://127.0.0.1:9/", "text": "hi"}
    async with bot.session.post(bot.url + "/api/messages", json=activity) as response:
        assert response.status == 404
    assert (await bot.send_event({"type": "emoji_changed"})).status == 200  # Slack itself is served


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "MICROSOFT_", "REDIS"))}
    keep.pop("PERMISSIONS_FILE", None)
    return {
        **keep,
        "OPENAI_API_KEY": TEST_OPENAI_KEY,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'propbot.db'}",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        **extra,
    }


async def test_a_named_but_missing_permissions_file_stops_start_up_and_fails_check(tmp_path: Path) -> None:
    env = base_env(tmp_path, PERMISSIONS_FILE="nope.yml")
    code, out, err = await run_command(["serve"], env, tmp_path, within=60)
    assert code == 1
    assert err.strip().splitlines() == [
        "propbot: nope.yml: cannot read the permissions file (No such file or directory)"
    ], err
    code, out, err = await run_command(["check"], env, tmp_path)
    assert code == 1
    assert "FAIL permissions  nope.yml: cannot read the permissions file" in out, out


async def test_trial_mode_is_announced_by_check(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    # check asks the model server for its models: the fake one, so the verdict is about permissions only.
    env = base_env(tmp_path, OPENAI_BASE_URL=fake_openai.base_url, OPENAI_MODEL="fake-model")
    code, out, err = await run_command(["check"], env, tmp_path)
    assert code == 0, out + err  # a legitimate mode for a first try, announced rather than refused
    assert "TRIAL MODE" in out and "self-approval still needs ALLOW_SELF_APPROVAL=true" in out, out + err


def test_trial_mode_still_refuses_self_approval_unless_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./permissions.yml here, and PERMISSIONS_FILE unset: trial mode
    strict = load_permission_rules(Settings(_env_file=None, permissions_file=None))  # type: ignore[call-arg]
    allowed, reason = strict.may_approve("slack:T1:U1", "schedule_maintenance", requested_by="slack:T1:U1")
    assert not allowed and "your own request" in reason
    assert strict.may_approve("slack:T1:U2", "schedule_maintenance", requested_by="slack:T1:U1")[0]
    relaxed = load_permission_rules(
        Settings(_env_file=None, permissions_file=None, allow_self_approval=True)  # type: ignore[call-arg]
    )
    assert relaxed.may_approve("slack:T1:U1", "schedule_maintenance", requested_by="slack:T1:U1")[0]


PARTNER_PERMISSIONS = """\
default_role: viewer
roles:
  viewer: {tools: [search_properties, get_property, list_maintenance_requests]}
  staff: {tools: [search_properties, get_property, list_maintenance_requests, schedule_maintenance]}
users:
  "slack:T1:*": staff
  "slack:TPARTNER:*": viewer
"""


async def test_a_slack_connect_partner_gets_their_own_teams_role_not_the_hosts(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PARTNER_PERMISSIONS, slack_allowed_teams="TPARTNER")
    fake_openai.default = lambda _request: text("hi")
    external: dict[str, Any] = mention("UEXTERNAL", "what can I do?")
    external.update(user_team="TPARTNER", team="TPARTNER")
    shared = {**event_body(external), "is_ext_shared_channel": True}
    assert (await bot.send_json(shared)).status == 200
    await bot.slack.wait_for("chat.postMessage")
    assert "schedule_maintenance" not in offered_tools(fake_openai.requests[0])
    assert (await bot.send_event(mention("USTAFF", "and me?"))).status == 200
    await bot.slack.wait_for("chat.postMessage", 2)
    assert "schedule_maintenance" in offered_tools(fake_openai.requests[1])
