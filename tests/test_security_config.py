"""Doors closed by configuration: no Teams route unless Teams is configured, permissions that fail closed,
and Slack Connect partners who get their own team's role, not the host's."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from bot.app.runtime import load_permission_rules
from bot.config import Settings
from bot.errors import PermissionsError
from tests.support.fake_openai import FakeOpenAI, offered_tools, text
from tests.support.fake_slack import MakeSlackBot, event_body, mention
from tests.support.harness import TEST_OPENAI_KEY
from tests.support.processes import ROOT, free_port, read_log, run_command, start_propbot, stop, wait_healthy
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
    prefixes = ("SLACK_", "OPENAI_", "MICROSOFT_", "TEAMS_", "REDIS")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    keep.pop("PERMISSIONS_FILE", None)
    return {
        **keep,
        "PYTHONPATH": str(ROOT),  # this checkout's code, whichever copy of propbot the venv has installed
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


async def test_trial_mode_is_announced_loudly_at_start_up(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    log = tmp_path / "serve.log"
    process = start_propbot("serve", env, tmp_path, log)
    try:
        await wait_healthy(f"http://127.0.0.1:{env['PORT']}", process, log)
    finally:
        stop(process)
    [warning] = [line for line in read_log(log).splitlines() if "TRIAL MODE" in line and "WARNING" in line]
    assert "every user may use and approve every tool" in warning
    assert "self-approval still needs ALLOW_SELF_APPROVAL=true" in warning


async def test_teams_with_an_app_id_but_no_allowed_tenants_stops_start_up(tmp_path: Path) -> None:
    """A MultiTenant app id is public: any tenant can install the bot. Which tenants may use it must be said,
    and that is found before anything starts (no database opened, no log lines), in one line."""
    env = base_env(tmp_path, MICROSOFT_APP_ID="00000000-0000-0000-0000-00000000b075", MICROSOFT_APP_PASSWORD="pw")
    for command in ("serve", "worker"):
        code, _, err = await run_command([command], {**env, "REDIS_URL": "redis://127.0.0.1:9"}, tmp_path)
        assert code == 1
        [line] = err.strip().splitlines()
        assert line.startswith("propbot: ") and "TEAMS_ALLOWED_TENANTS should list the Azure tenant ids" in line, err
    assert not (tmp_path / "propbot.db").exists()


async def test_check_fails_on_teams_settings_that_serve_would_refuse(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    single = {"MICROSOFT_APP_ID": "00000000-0000-0000-0000-00000000b075", "MICROSOFT_APP_TYPE": "SingleTenant"}
    env = base_env(tmp_path, OPENAI_BASE_URL=fake_openai.base_url, OPENAI_MODEL="fake-model", **single)
    code, out, _ = await run_command(["check"], {**env, "TEAMS_ALLOWED_TENANTS": "tenant-1"}, tmp_path)
    assert code == 1
    assert "FAIL teams        MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID should be set" in out, out
    code, _, err = await run_command(["serve"], {**env, "TEAMS_ALLOWED_TENANTS": "tenant-1"}, tmp_path)
    assert code == 1 and "MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID should be set" in err


def test_the_teams_settings_that_can_be_served() -> None:
    def problem(**values: Any) -> str | None:
        return Settings(_env_file=None, **values).teams_problem()  # type: ignore[call-arg]

    app = {"microsoft_app_id": "app", "microsoft_app_password": "pw"}
    assert problem() is None and problem(teams_local_mode=True) is None  # off, or local mode: nothing to check
    assert "TEAMS_ALLOWED_TENANTS" in str(problem(**app))
    assert problem(**app, teams_allowed_tenants="*") is None  # any tenant: an explicit choice
    # A single-tenant bot's own tenant is the default allow-list.
    single = {**app, "microsoft_app_type": "SingleTenant", "microsoft_app_tenant_id": "tenant-1"}
    assert problem(**single) is None
    assert Settings(_env_file=None, **single).allowed_tenants == {"tenant-1"}  # type: ignore[arg-type, call-arg]
    assert "MICROSOFT_APP_TENANT_ID" in str(problem(**{**single, "microsoft_app_tenant_id": ""}))
    assert "MICROSOFT_TOKEN_ISSUER" in str(problem(**app, teams_allowed_tenants="t", microsoft_login_url="http://x/"))


def test_teams_is_served_only_when_configured_and_local_mode_listens_on_loopback() -> None:
    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    assert not settings().teams_enabled and settings().listen_host == "0.0.0.0"
    local = settings(teams_local_mode=True)
    assert local.teams_enabled and local.listen_host == "127.0.0.1"  # nobody else can even connect
    assert settings(teams_local_mode=True, host="0.0.0.0").listen_host == "0.0.0.0"  # HOST set: the peer check stays
    # An app id means authentication: local mode is then ignored, and the default is every interface again.
    both = settings(teams_local_mode=True, microsoft_app_id="app", teams_allowed_tenants="t1")
    assert both.teams_enabled and both.listen_host == "0.0.0.0"
    assert both.teams_problem() is None


def test_an_empty_permissions_file_variable_is_not_trial_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`PERMISSIONS_FILE=` (set, but to nothing) names no file; it must not quietly mean everyone may do everything."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERMISSIONS_FILE", "")
    with pytest.raises(PermissionsError):
        load_permission_rules(Settings(_env_file=None))  # type: ignore[call-arg]


def test_old_teams_entries_are_warned_about_at_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "permissions.yml"
    path.write_text('roles: {staff: {tools: ["*"]}}\nusers:\n  "teams:aad-1": staff\n  "teams:tenant-1:aad-2": staff\n')
    with caplog.at_level(logging.WARNING, logger="bot.app.runtime"):
        rules = load_permission_rules(Settings(_env_file=None, permissions_file=path))  # type: ignore[call-arg]
    [warning] = [r.getMessage() for r in caplog.records if "names no tenant" in r.getMessage()]
    assert "'teams:aad-1'" in warning and "teams:<tenant id>:<AAD object id>" in warning
    # It still matches that user, in any allowed tenant: the warning is how the operator learns it.
    assert rules.role_of("teams:tenant-1:aad-1") == rules.role_of("teams:tenant-9:aad-1") == "staff"
