"""Real `python -m bot ...` subprocesses wired to the suite's Redis and fake servers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.support.harness import PERMISSIONS_YAML, TEST_OPENAI_KEY

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def propbot_env(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack, **extra: str
) -> dict[str, str]:
    """Environment for a propbot process: the suite's Redis, a SQLite file in tmp_path, the fakes."""
    permissions = tmp_path / "permissions.yml"
    permissions.write_text(PERMISSIONS_YAML)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "MICROSOFT_", "REDIS"))}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1,localhost",
        "OPENAI_API_KEY": TEST_OPENAI_KEY,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_MODEL": "fake-model",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'propbot.db'}",
        "PERMISSIONS_FILE": str(permissions),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        **extra,
    }


def start_propbot(command: str, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    # cwd is a temporary directory, so a developer's .env cannot leak into the test.
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, within: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


async def run_command(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = "", within: float = 60.0
) -> tuple[int, str, str]:
    """`python -m bot <args>` to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=within)
    return proc.returncode or 0, out.decode(), err.decode()


async def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, within: float = 30.0) -> None:
    """Poll `url`/healthz until the process answers 200; fail with its log if it exits or never does."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"propbot exited:\n{read_log(log)}"
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"propbot did not become healthy:\n{read_log(log)}")


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")
