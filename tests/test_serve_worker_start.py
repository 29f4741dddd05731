"""A `propbot worker` that cannot start stops `propbot serve` with the worker's own error, instead of being
restarted forever behind a green /healthz; a worker that got going and died later is still restarted.
Real processes: WorkerProcesses on small shell commands, and `python -m bot serve` on the suite's Redis and
fakes with a worker that hits a configuration error serve does not."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from bot.app.processes import WorkerProcesses, WorkerStartFailed
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import FakeSlack
from tests.support.processes import ROOT, propbot_env, read_log, start_propbot, stop, wait_healthy
from tests.support.waiting import eventually


async def test_a_worker_that_exits_at_once_is_reported_with_its_last_error_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    failing = "import sys; print('starting', file=sys.stderr); sys.exit('propbot: configuration error: X is wrong')"
    workers = WorkerProcesses(2, command=[sys.executable, "-c", failing])
    began = time.monotonic()
    await workers.start()
    try:
        failure = await asyncio.wait_for(workers.failed(), 30)
    finally:
        await workers.stop(5)
    assert time.monotonic() - began < 30
    assert isinstance(failure, WorkerStartFailed)
    assert str(failure) == (
        "a turn worker could not start (exited 3 times in a row within 15s of starting, last with code 1): "
        "propbot: configuration error: X is wrong"
    )
    # Every line the workers wrote reached this process's stderr: three starts of at least one worker.
    err = capfd.readouterr().err
    assert err.count("propbot: configuration error: X is wrong\n") >= 3
    assert err.count("starting\n") >= 3


async def test_a_worker_that_got_going_before_dying_is_started_again(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    # Up for longer than the start-up window, then dead: a crash in service, not a worker that cannot start.
    command = ["sh", "-c", f"echo started >> {starts}; sleep 0.5; echo 'crashed' >&2; exit 1"]
    workers = WorkerProcesses(1, command=command, start_window=0.2, start_attempts=2)
    await workers.start()
    try:
        await eventually(lambda: starts.exists() and len(starts.read_text().splitlines()) >= 3, within=20)
        assert workers.failure is None
    finally:
        await workers.stop(5)


async def test_serve_stops_with_the_workers_error_when_its_worker_cannot_start(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    # Only the worker sees a setting it refuses: sitecustomize runs with sys.argv already set.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\nif 'worker' in sys.argv[1:]:\n    os.environ['TURN_CONCURRENCY'] = '0'\n"
    )
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, WEB_CONCURRENCY="2")
    env["PYTHONPATH"] = f"{site}:{ROOT}"
    log = tmp_path / "serve.log"
    began = time.monotonic()
    server = start_propbot("serve", env, tmp_path, log)
    try:
        await wait_healthy(f"http://127.0.0.1:{env['PORT']}", server, log)  # the web process itself is fine
        code = await asyncio.to_thread(server.wait, 30)
    finally:
        stop(server)
    text = read_log(log)
    assert code == 1, text
    assert time.monotonic() - began < 30, text
    worker_error = "propbot: configuration error: TURN_CONCURRENCY"
    headline = (
        "propbot: a turn worker could not start (exited 3 times in a row within 15s of starting, last with code 1)"
    )
    assert text.strip().splitlines()[-1].startswith(f"{headline}: {worker_error}"), text
    # The worker's own lines were passed on each time it was started.
    assert sum(line.startswith(worker_error) for line in text.splitlines()) == 3, text
    assert "shutting down: finishing in-flight turns" in text
    assert "Traceback" not in text
