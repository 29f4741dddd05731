"""Once Slack has its 200 it never sends the event again: a worker that dies mid-turn must not lose it,
and a server stopped with SIGTERM finishes the turns it has started."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import FakeSlack, MakeSlackBot, mention
from tests.support.processes import propbot_env, start_propbot, stop
from tests.support.waiting import eventually
from tests.test_slack_processes import read, wait_healthy
from tools.db import Database


async def test_a_worker_killed_mid_turn_is_replaced_and_the_answer_arrives_once(
    tmp_path: Path,
    redis_url: str,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
) -> None:
    first_call, release = asyncio.Event(), asyncio.Event()

    async def model(request: dict[str, Any]) -> dict[str, Any]:
        if not first_call.is_set():
            first_call.set()
            await release.wait()  # the worker waiting for this is killed long before it is released
        return text("answered after the crash")

    fake_openai.default = model
    # The web side only verifies, de-duplicates, queues and acks; the turns run on worker processes.
    web = await slack_bots(sqlite_database, in_process_worker=False)
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, TURN_CLAIM_IDLE="1.5", LOCK_TTL="3")
    env["DATABASE_URL"] = str(sqlite_database.url.render_as_string(hide_password=False))
    log = tmp_path / "workers.log"
    doomed = start_propbot("worker", env, tmp_path, log)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        sent = await web.send_event(mention("USTAFF", "what needs fixing at P-1001?"))
        assert sent.status == 200
        await eventually(first_call.is_set, within=30)
        assert stop(doomed, signal.SIGKILL) == -signal.SIGKILL
        assert fake_slack.calls_to("chat.postMessage") == []

        survivor = start_propbot("worker", env, tmp_path, log)
        [answer] = await fake_slack.wait_for("chat.postMessage", within=30)
        assert "answered after the crash" in str(answer.args.get("text")), read(log)
        await asyncio.sleep(2.0)  # a second, wrong answer would arrive in this window
        assert len(fake_slack.calls_to("chat.postMessage")) == 1
        assert len(fake_openai.requests) == 2
    finally:
        release.set()
        stop(doomed)
        if survivor is not None:
            stop(survivor)


async def test_sigterm_lets_an_in_flight_turn_finish(
    tmp_path: Path,
    redis_url: str,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
) -> None:
    started = asyncio.Event()

    async def slow_model(request: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(2.0)
        return text("finished during shutdown")

    fake_openai.default = slow_model
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack)
    log = tmp_path / "serve.log"
    server = start_propbot("serve", env, tmp_path, log)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        await wait_healthy(url, server, log)
        client = await slack_bots(sqlite_database, in_process_worker=False)
        sent = await client.send_event(mention("USTAFF", "slow question"), url=url)
        assert sent.status == 200
        await eventually(started.is_set, within=20)
        server.send_signal(signal.SIGTERM)
        [answer] = await fake_slack.wait_for("chat.postMessage", within=20)
        assert "finished during shutdown" in str(answer.args.get("text"))
        code = await asyncio.to_thread(server.wait, 20)
        assert code == 0, read(log)
        # Nothing is left behind for a worker to pick up again, and the lock was released.
        keys = await client.runtime.redis.keys("pb:{slack:*:lock")  # type: ignore[union-attr]
        assert keys == []
    finally:
        stop(server)
