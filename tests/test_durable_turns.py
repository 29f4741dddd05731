"""A server stopped with SIGTERM finishes the turns it has started. (A worker killed mid-turn, with the default
settings: tests/faults/test_killed_workers.py.)"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import FakeSlack, MakeSlackBot, mention
from tests.support.processes import propbot_env, start_propbot, stop
from tests.support.waiting import eventually
from tests.test_slack_processes import read, wait_healthy
from tools.db import Database


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
