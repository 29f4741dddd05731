"""Start-up validation: one clear line for a bad setting or a malformed permissions file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import load_settings
from bot.core.permissions import load_permissions, parse_permissions
from bot.errors import ConfigError, PermissionsError

EXAMPLE = Path(__file__).resolve().parent.parent / "permissions.example.yml"


def test_invalid_setting_names_the_variable_and_what_it_should_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TOOL_ROUNDS", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    message = str(err.value)
    assert message.startswith("MAX_TOOL_ROUNDS should be a whole number from 1 to 50")
    assert "'lots'" in message and "\n" not in message


def test_bad_redis_url_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "localhost:6379")
    with pytest.raises(ConfigError, match=r"^REDIS_URL should be a redis:// or rediss:// URL"):
        load_settings(_env_file=None)


def test_secret_values_are_not_echoed_in_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://user:hunter2-secret@example")
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    assert "hunter2" not in str(err.value) and "OPENAI_BASE_URL" in str(err.value)


def test_slack_api_url_gets_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api")
    assert load_settings(_env_file=None).slack_api_url == "http://127.0.0.1:9999/api/"


def test_example_permissions_file_loads_and_resolves_roles() -> None:
    perms = load_permissions(EXAMPLE)
    assert perms.role_of("slack:T0001:U0001") == "manager"
    assert perms.role_of("slack:T0001:U9999") == "viewer"
    assert perms.may_use("slack:T0001:U0002", "schedule_maintenance")
    assert not perms.may_use("slack:T0001:U9999", "schedule_maintenance")
    ok, _ = perms.may_approve("slack:T0001:U0001", "schedule_maintenance", requested_by="slack:T0001:U0002")
    assert ok
    ok, reason = perms.may_approve("slack:T0001:U0002", "schedule_maintenance", requested_by="slack:T0001:U0001")
    assert not ok and "not allowed" in reason


def test_a_refused_approver_is_told_which_roles_may_approve() -> None:
    perms = parse_permissions(
        "default_role: viewer\n"
        "roles:\n"
        "  viewer: {tools: [a]}\n"
        "  lead: {tools: [a, fix_sink], approves: [fix_sink]}\n"
        "  owner: {tools: ['*'], approves: ['*']}\n"
        "  staff: {tools: [a, fix_sink, demolish]}\n"
    )
    ok, reason = perms.may_approve("slack:T1:U1", "fix_sink", requested_by="slack:T1:U2")
    assert not ok and reason == "You are not allowed to approve fix sink; ask someone with the lead or owner role."
    _, reason = perms.may_approve("slack:T1:U1", "demolish", requested_by="slack:T1:U2")
    assert reason == "You are not allowed to approve demolish; ask someone with the owner role."
    nobody = parse_permissions("default_role: viewer\nroles:\n  viewer: {tools: [a]}\n")
    _, reason = nobody.may_approve("slack:T1:U1", "demolish", requested_by="slack:T1:U2")
    assert reason.startswith("You are not allowed to approve demolish, and no role may;") and reason.count(".") == 1


def test_workspace_wildcard() -> None:
    perms = parse_permissions(
        "default_role: viewer\nroles:\n  viewer: {tools: [a]}\n  staff: {tools: [a, b]}\n"
        'users:\n  "slack:T9:*": staff\n'
    )
    assert perms.role_of("slack:T9:UANY") == "staff" and perms.role_of("slack:T8:UANY") == "viewer"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("roles:\n  viewer: {tools: [a]}\nusers:\n  u1: boss\n", 4, "not defined under roles"),
        ("default_role: nobody\nroles:\n  viewer: {tools: [a]}\n", 1, "not one of the roles"),
        ("roles:\n  viewer:\n    tools: [a]\n    aproves: [b]\n", 4, "aproves"),
        ("roles:\n  viewer: {tools: [a]\n  staff: {}\n", 3, "not valid YAML"),
        ("roles:\n  viewer:\n    tools: 7\n", 3, "tools"),
        ("- just\n- a list\n", 1, "expected a mapping"),
    ],
)
def test_malformed_permissions_name_the_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(PermissionsError) as err:
        parse_permissions(text, "perms.yml")
    message = str(err.value)
    assert message.startswith(f"perms.yml: line {line}:"), message
    assert problem in message


def test_missing_permissions_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PermissionsError, match="cannot read the permissions file"):
        load_permissions(tmp_path / "nope.yml")


@given(st.text(max_size=300))
def test_permission_loader_never_raises_anything_but_permissions_error(text: str) -> None:
    try:
        perms = parse_permissions(text)
    except PermissionsError:
        return
    assert perms.spec.roles is not None


def test_a_role_s_tools_and_its_approvals_are_separate_grants() -> None:
    rules = parse_permissions(
        """
roles:
  everything: {tools: ["*"]}
  checker: {tools: [get_property], approves: ["*"]}
users:
  "slack:T1:UALL": everything
  "slack:T1:UCHECK": checker
"""
    )
    assert rules.may_use("slack:T1:UALL", "schedule_maintenance")  # every tool, though it approves nothing
    assert not rules.may_approve("slack:T1:UALL", "schedule_maintenance", "slack:T1:UX")[0]
    assert rules.may_approve("slack:T1:UCHECK", "schedule_maintenance", "slack:T1:UX")[0]
    assert not rules.may_use("slack:T1:UCHECK", "schedule_maintenance")  # approving it is not using it
