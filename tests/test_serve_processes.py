"""`propbot serve` on every core: with WEB_CONCURRENCY=2 the web process starts a `propbot worker` beside itself,
the turns run there, a worker that dies is started again, and SIGTERM stops both after their turns are done.
Real processes on the suite's Redis and the fakes."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import FakeSlack, MakeSlackBot, mention
from tests.support.processes import propbot_env, read_log, start_propbot, stop, wait_healthy
from tests.support.waiting import eventually
from tools.db import Database


def workers_of(pid: int) -> list[int]:
    """The `propbot worker` processes whose parent is `pid`, from /proc."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent == str(pid) and b"worker" in cmdline and b"bot" in cmdline:
            found.append(int(entry.name))
    return found


async def test_serve_runs_turns_in_a_worker_process_it_keeps_alive_and_stops(
    tmp_path: Path,
    redis_url: str,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
) -> None:
    fake_openai.default = lambda request: text(f"answered by a worker {len(fake_openai.requests)}")
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, WEB_CONCURRENCY="2")
    log = tmp_path / "serve.log"
    server = start_propbot("serve", env, tmp_path, log)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        await wait_healthy(url, server, log)
        await eventually(lambda: len(workers_of(server.pid)) == 1, within=20)
        [first] = workers_of(server.pid)
        assert "1 worker process(es) beside this one (WEB_CONCURRENCY=2)" in read_log(log)
        client = await slack_bots(sqlite_database, in_process_worker=False)
        assert (await client.send_event(mention("USTAFF", "one"), url=url)).status == 200
        await fake_slack.wait_for("chat.postMessage", within=20)

        os.kill(first, signal.SIGKILL)  # a worker dies: the server starts another
        await eventually(lambda: workers_of(server.pid) not in ([], [first]), within=20)
        assert (await client.send_event(mention("USTAFF", "two"), url=url)).status == 200
        await fake_slack.wait_for("chat.postMessage", 2, within=30)
        [second] = workers_of(server.pid)
        assert "turn worker 0 (pid" in read_log(log) and "starting it again" in read_log(log)

        server.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.wait, 40)
        assert code == 0, read_log(log)
        await eventually(lambda: not Path(f"/proc/{second}").exists() or _zombie(second), within=10)
    finally:
        stop(server)


def _zombie(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


async def test_one_process_when_told_or_without_the_queue(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    for extra in ({"WEB_CONCURRENCY": "1"}, {"WEB_CONCURRENCY": "4", "DURABLE_TURNS": "false"}):
        env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, **extra)
        log = tmp_path / f"serve-{len(extra)}.log"
        server = start_propbot("serve", env, tmp_path, log)
        try:
            await wait_healthy(f"http://127.0.0.1:{env['PORT']}", server, log)
            await asyncio.sleep(1.0)
            assert workers_of(server.pid) == [], read_log(log)
        finally:
            assert stop(server) == 0, read_log(log)
