"""The permissions file changed on disk: every process puts it in force within seconds, without a restart; an edit
that does not parse keeps the rules in force and says so (the log, /healthz, `propbot check`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot.app.reload import PermissionsReloader
from bot.core.directory import Memberships
from bot.core.gate import Gate
from bot.core.permissions import load_permissions
from bot.store.factory import make_store
from bot.types import Membership
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import FakeSlack
from tests.support.harness import PERMISSIONS_YAML
from tests.support.processes import free_port, propbot_env, read_log, run_command, start_propbot, stop, wait_healthy
from tests.support.waiting import eventually

PROMOTED = PERMISSIONS_YAML + '  "slack:T1:UNEW": manager\n'
BROKEN = PERMISSIONS_YAML + '  "slack:T1:UNEW": boss\n'


def edit(path: Path, text: str) -> None:
    path.write_text(text)
    # Two edits within one clock tick of the file system would share a modification time.
    stamp = path.stat().st_mtime_ns + 1_000_000
    os.utime(path, ns=(stamp, stamp))


async def test_a_change_applies_in_place_and_a_broken_one_keeps_the_rules_in_force(tmp_path: Path) -> None:
    path = tmp_path / "permissions.yml"
    path.write_text(PERMISSIONS_YAML)
    gate = Gate(load_permissions(path), lambda: ["get_property", "onboard_tenant"])
    reloader = PermissionsReloader(path, gate, allow_self_approval=False, interval=1)
    assert await reloader.check() is False  # unchanged
    assert gate.tools_for("slack:T1:UNEW") == ["get_property"]

    edit(path, PROMOTED)
    assert await reloader.check() is True
    assert gate.tools_for("slack:T1:UNEW") == ["get_property", "onboard_tenant"]  # the next check sees it

    edit(path, BROKEN)
    assert await reloader.check() is False
    assert reloader.problem is not None and "role 'boss', which is not defined" in reloader.problem
    assert gate.tools_for("slack:T1:UNEW") == ["get_property", "onboard_tenant"]  # the rules in force stay
    assert gate.tools_for("slack:T1:UVIEWER") == ["get_property"]  # for everyone: nothing opened up

    path.unlink()
    assert await reloader.check() is False and "cannot read the permissions file" in str(reloader.problem)
    edit(path, PERMISSIONS_YAML)
    assert await reloader.check() is True and reloader.problem is None
    assert gate.tools_for("slack:T1:UNEW") == ["get_property"]


async def health(session: aiohttp.ClientSession, port: str) -> dict[str, Any]:
    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
        body: dict[str, Any] = await response.json()
        return body


async def test_two_running_processes_apply_an_edit_within_five_seconds_and_report_a_broken_one(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, WEB_CONCURRENCY="1")
    path = Path(env["PERMISSIONS_FILE"])
    ports = [env["PORT"], str(free_port())]
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    processes = [
        start_propbot("serve", {**env, "PORT": port}, tmp_path, log) for port, log in zip(ports, logs, strict=True)
    ]
    try:
        for port, process, log in zip(ports, processes, logs, strict=True):
            await wait_healthy(f"http://127.0.0.1:{port}", process, log)
        async with aiohttp.ClientSession() as session:
            assert [(await health(session, p))["permissions"] for p in ports] == ["ok", "ok"]

            edit(path, PROMOTED)
            applied = "applied: 3 roles, 6 user and 0 group entries"  # UNEW is the sixth user entry
            await eventually(lambda: all(applied in read_log(log) for log in logs), within=5)

            edit(path, BROKEN)

            async def reported() -> bool:
                found = [(await health(session, p))["permissions"] for p in ports]
                return all("role 'boss', which is not defined under roles" in f for f in found)

            await eventually(reported, within=5)
            assert all(read_log(log).count("changed but not applied") == 1 for log in logs)
            code, out, _ = await run_command(["check"], env, tmp_path)
            assert code == 1 and "role 'boss'" in out  # check names the problem too
    finally:
        for process in processes:
            stop(process)


async def test_check_who_shows_how_a_person_resolves_with_the_membership_the_bot_last_saw(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack)
    edit(Path(env["PERMISSIONS_FILE"]), PERMISSIONS_YAML + 'groups:\n  "slack:T1:usergroup:SOPS": manager\n')
    code, out, _ = await run_command(["check", "--who", "slack:T1:UNEW"], env, tmp_path)
    assert code == 0, out
    assert "user entry   none" in out and "no groups; e-mail unknown (none looked up)" in out
    assert "roles        viewer" in out

    # What the running bot looked up, shared through Redis.
    store = make_store(redis_url, history_ttl=60)
    try:
        seen = Memberships(store, lambda: load_permissions(Path(env["PERMISSIONS_FILE"])))
        await seen.write_shared("slack:T1:UNEW", Membership(frozenset({"slack:T1:usergroup:SOPS"})), time.time())
    finally:
        await store.close()
    code, out, _ = await run_command(["check", "--who", "slack:T1:UNEW"], env, tmp_path)
    assert "slack:T1:usergroup:SOPS; e-mail unknown (looked up " in out and "s ago by the running bot)" in out
    assert "roles        manager" in out and "onboard_tenant" in out

    code, out, _ = await run_command(["check", "--who", "slack:T1:USTAFF"], env, tmp_path)
    assert "user entry   staff  (it wins: groups are not consulted)" in out
