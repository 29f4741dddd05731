"""A click handled by a second `propbot serve` process (same Redis, same database) than the one that
posted the card. The second process is a real subprocess: `python -m bot serve`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.types import ApprovalStatus
from tests.support.cards import post_card
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import BOT_TOKEN, FakeSlack, MakeSlackBot, click
from tests.support.processes import propbot_env, start_propbot, stop
from tools.db import Database
from tools.tables import MaintenanceRequest


@pytest.fixture
def second_process(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack)
    log = tmp_path / "serve.log"
    process = start_propbot("serve", env, tmp_path, log)
    try:
        yield f"http://127.0.0.1:{env['PORT']}", process, log
    finally:
        stop(process)


async def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"propbot serve exited:\n{read(log)}"
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"propbot serve did not become healthy:\n{read(log)}")


def read(log: Path) -> str:
    return log.read_text(errors="replace")


async def test_click_on_a_second_serve_process_runs_the_tool_once(
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    second_process: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    url, process, log = second_process
    first = await slack_bots(sqlite_database)
    card = await post_card(first, fake_openai)
    await wait_healthy(url, process, log)

    approve = click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts)
    sent = await first.send_click(approve, url=url)  # to the second process only
    assert sent.status == 200, read(log)
    [update] = await first.slack.wait_for("chat.update", within=20)
    rendered = json.dumps(update.args["blocks"])
    assert "Approved by <@UMANAGER>" in rendered and "Done: Request MR-" in rendered
    answers = await first.slack.wait_for("chat.postMessage", 2, within=20)
    assert answers[-1].args["thread_ts"] == card.thread
    stored = await first.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.DONE
    async with sqlite_database.session() as session:
        query = select(func.count()).select_from(MaintenanceRequest)
        query = query.where(MaintenanceRequest.idempotency_key == card.approval_id)
        assert (await session.execute(query)).scalar_one() == 1
    # The first process can no longer decide it either.
    await first.send_click(click("UMANAGER2", "propbot_approve", card.approval_id, card.channel, card.ts))
    [note] = await first.slack.wait_for("chat.postEphemeral")
    assert "already" in note.args["text"] and len(first.slack.calls_to("chat.update")) == 1
    assert BOT_TOKEN not in read(log)
