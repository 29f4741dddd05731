"""Real `propbot worker` processes killed with SIGKILL: the turn they held is answered exactly once, quickly,
by another worker, with the default settings."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.core import texts
from bot.ingress.turn_queue import GROUP, STREAM
from tests.faults.proxy import Fault, RedisFaultProxy, command
from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import Call, FakeSlack, MakeSlackBot, mention
from tests.support.processes import propbot_env, start_propbot, stop
from tests.support.waiting import eventually
from tests.test_slack_processes import read
from tools.db import Database


def _worker_env(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, db: Database, **extra: str
) -> dict[str, str]:
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, **extra)
    env["DATABASE_URL"] = str(db.url.render_as_string(hide_password=False))
    return env


async def test_row_4_a_worker_killed_after_answering_but_before_acknowledging_is_not_answered_twice(
    tmp_path: Path,
    redis_url: str,
    proxy: RedisFaultProxy,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
) -> None:
    fake_openai.default = lambda request: text("the one answer")
    web = await slack_bots(sqlite_database, in_process_worker=False)
    quick = {"TURN_CLAIM_IDLE": "1.5"}
    log = tmp_path / "workers.log"
    # The doomed worker reaches Redis through the proxy, which kills it as it sends its acknowledgement (the
    # batch that also marks the outcome delivered; the mark, ahead of it, goes through): the answer is saved
    # and posted, the entry still pending.
    doomed_env = _worker_env(tmp_path, proxy.url, fake_openai, fake_slack, sqlite_database, **quick)
    doomed = start_propbot("worker", doomed_env, tmp_path, log)
    proxy.arm(Fault(at=1, kind="kill", when=command("XACK"), on_kill=doomed.kill))
    survivor: subprocess.Popen[bytes] | None = None
    try:
        assert (await web.send_event(mention("USTAFF", "what needs fixing at P-1001?"))).status == 200
        await asyncio.wait_for(proxy.fired.wait(), 30)
        assert await asyncio.to_thread(doomed.wait, 10) == -signal.SIGKILL
        assert len(fake_slack.calls_to("chat.postMessage")) == 1

        survivor_env = _worker_env(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database, **quick)
        survivor = start_propbot("worker", survivor_env, tmp_path, log)
        redis = web.runtime.redis
        assert redis is not None

        await eventually(lambda: queue_empty(redis), within=30)
        # The entry is acknowledged and gone only after its replies were delivered, and no worker holds it: a
        # second answer can no longer come.
        assert len(fake_slack.calls_to("chat.postMessage")) == 1, read(log)
        assert len(fake_openai.requests) == 1  # the turn ran once
    finally:
        stop(doomed)
        if survivor is not None:
            stop(survivor)


async def test_a_worker_killed_mid_turn_is_answered_within_30_seconds_with_default_settings(
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
    web = await slack_bots(sqlite_database, in_process_worker=False)
    env = _worker_env(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database)  # the defaults
    log = tmp_path / "workers.log"
    doomed = start_propbot("worker", env, tmp_path, log)
    survivor = start_propbot("worker", env, tmp_path, log)  # already running, as in a deployment
    try:
        assert (await web.send_event(mention("USTAFF", "what needs fixing at P-1001?"))).status == 200
        await eventually(first_call.is_set, within=30)
        # Whichever worker took the turn is now waiting on the model; kill that one.
        holder = await _holder(web, doomed, survivor)
        killed_at = time.monotonic()
        assert stop(holder, signal.SIGKILL) == -signal.SIGKILL
        [answer] = await fake_slack.wait_for("chat.postMessage", within=30)
        took = time.monotonic() - killed_at
        assert "answered after the crash" in str(answer.args.get("text")), read(log)
        assert took < 30, f"answered {took:.1f}s after the crash"
        print(f"\nkilled worker's turn answered {took:.1f}s after the SIGKILL (default settings)")
        redis = web.runtime.redis
        assert redis is not None
        await eventually(lambda: queue_empty(redis), within=30)  # no worker holds the turn any more
        assert len(fake_slack.calls_to("chat.postMessage")) == 1
    finally:
        release.set()
        stop(doomed)
        stop(survivor)


async def _holder(web: Any, *workers: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """The worker process that owns the pending turn (a consumer is named `<host>-<pid>-<random>`)."""
    redis = web.runtime.redis
    pending: Any = await redis.xpending_range(STREAM, GROUP, min="-", max="+", count=1)
    consumer = str(pending[0]["consumer"])
    for worker in workers:
        if f"-{worker.pid}-" in consumer:
            return worker
    raise AssertionError(f"no worker owns consumer {consumer}")


@pytest.mark.parametrize("when", ["before", "after"], ids=["before_slack_took_it", "after_slack_posted_it"])
async def test_a_worker_killed_while_slack_holds_its_answer_is_answered_once_by_another(
    when: str,
    tmp_path: Path,
    redis_url: str,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
) -> None:
    """A worker killed while Slack holds its answer's post ("before": Slack has not acted on it; "after": it is
    posted, the answer has not come back): another worker delivers the saved answer, once, without a copy note."""
    fake_openai.default = lambda request: text("the one answer")
    released = asyncio.Event()

    async def hang(call: Call) -> None:
        await released.wait()
        if when == "before":
            raise web.HTTPServiceUnavailable()

    fake_slack.holds["chat.postMessage"] = (when, hang)
    front = await slack_bots(sqlite_database, in_process_worker=False)
    quick = {"TURN_CLAIM_IDLE": "1.5"}
    env = _worker_env(tmp_path, redis_url, fake_openai, fake_slack, sqlite_database, **quick)
    log = tmp_path / "workers.log"
    doomed = start_propbot("worker", env, tmp_path, log)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        event = mention("USTAFF", "what needs fixing at P-1001?")
        assert (await front.send_event(event)).status == 200
        await fake_slack.wait_for("chat.postMessage", within=30)
        assert stop(doomed, signal.SIGKILL) == -signal.SIGKILL
        del fake_slack.holds["chat.postMessage"]
        released.set()
        survivor = start_propbot("worker", env, tmp_path, log)
        redis = front.runtime.redis
        assert redis is not None

        async def settled() -> bool:
            pending: Any = await redis.xpending(STREAM, GROUP)
            return int(pending["pending"]) == 0 and await redis.xlen(STREAM) == 0

        await eventually(settled, within=30)
        answers = [m for m in fake_slack.replies("C1") if m.get("thread_ts") == event["ts"]]
        assert [m["text"] for m in answers] == ["the one answer"], read(log)
        assert answers[0]["metadata"]["event_type"] == "propbot_reply"
        assert texts.resent().text not in str(fake_slack.messages)  # no "this is a copy" note: nothing was copied
        assert len(fake_openai.requests) == 1  # the turn ran once; its saved answer was delivered
        assert fake_slack.calls_to("conversations.replies")  # the survivor looked before posting
    finally:
        released.set()
        stop(doomed)
        if survivor is not None:
            stop(survivor)


async def queue_empty(redis: Any) -> bool:
    """No entry waiting and none taken: every turn was answered and acknowledged (the entry is deleted then)."""
    pending: Any = await redis.xpending(STREAM, GROUP)
    return int(pending["pending"]) == 0 and int(await redis.xlen(STREAM)) == 0
