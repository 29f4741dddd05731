"""The processes of a benchmark run: the fakes, propbot (serve, worker) or the bare Bolt app.

Every process is started here with its own log file and killed here by its own pid; nothing is left
behind when the run ends or fails (stdin pipes close with the orchestrator, and `PR_SET_PDEATHSIG`
stops a child whose parent died).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-bench-0000-not-a-real-token"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
OPENAI_KEY = "sk-bench-not-a-real-openai-key-0001"

# Bench users (UB000...) are staff; the approval figure has a staff requester and a manager approver.
PERMISSIONS = """\
default_role: viewer
roles:
  viewer:
    tools: [search_properties, get_property, list_maintenance_requests]
  staff:
    tools: [search_properties, get_property, list_maintenance_requests, schedule_maintenance,
            cancel_maintenance_request]
  manager:
    tools: ["*"]
    approves: ["*"]
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:*": staff
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        # SIGKILL: a graceful shutdown would drain queued turns for up to 25 s, which no figure needs.
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far, from /proc/<pid>/stat."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        # After the command name: state is field 3, utime and stime are fields 14 and 15 (1-based).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB from /proc: psutil is not a dependency."""
        values = {"VmRSS": 0.0, "VmHWM": 0.0}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]


def spawn(name: str, args: list[str], env: dict[str, str], workdir: Path, stdout_pipe: bool = False) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=workdir,  # a developer's .env in the repository must not leak into the run
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out,
            preexec_fn=_die_with_parent,
        )
    return Proc(name, process, log)


def base_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "MICROSOFT_", "REDIS"))}
    return {**keep, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost"}


def start_fakes(workdir: Path) -> tuple[Proc, str]:
    proc = spawn("fakes", ["-m", "bench.fakes"], base_env(), workdir, stdout_pipe=True)
    assert proc.process.stdout is not None
    line = proc.process.stdout.readline().decode().strip()
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"the fakes did not start:\n{proc.tail()}")
    return proc, f"http://127.0.0.1:{line}"


@dataclass
class Target:
    """Where a layout takes events, and the processes it runs (for RSS and profiling)."""

    layout: str
    url: str
    procs: list[Proc] = field(default_factory=list)

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    @property
    def turn_proc(self) -> Proc:
        """The process that runs turns: the worker in the split layout, else the one process."""
        return self.procs[-1]


def app_env(fakes_url: str, redis_url: str, workdir: Path, port: int, **extra: str) -> dict[str, str]:
    permissions = workdir / "permissions.yml"
    permissions.write_text(PERMISSIONS)
    return {
        **base_env(),
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fakes_url + "/v1",
        "OPENAI_MODEL": "fake-model",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'propbot.db'}",
        "PERMISSIONS_FILE": str(permissions),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fakes_url + "/api/",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RATE_LIMIT_USER_PER_MINUTE": "0",
        "RATE_LIMIT_WORKSPACE_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        # Each layout names its processes itself (`split` is what `propbot serve` starts on two cores).
        "WEB_CONCURRENCY": "1",
        **extra,
    }


async def wait_healthy(url: str, proc: Proc, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not become healthy:\n{proc.tail()}")


@contextlib.asynccontextmanager
async def deployment(
    layout: str, fakes_url: str, redis_url: str, workdir: Path, launcher: Path | None = None
) -> AsyncIterator[Target]:
    """`inproc`: one `propbot serve` with its in-process worker (the default); `split`: `propbot serve`
    with IN_PROCESS_WORKER=false plus one `propbot worker`; `direct`: one `propbot serve` with
    DURABLE_TURNS=false (turns run straight from the ack, no queue); `bare`: the bare Bolt app; `textbook`: a
    tutorial's Bolt + openai bot (bench.textbook_bot)."""
    port = free_port()
    bot = [str(launcher)] if launcher else ["-m", "bot"]  # run.py resolved it
    target = Target(layout, f"http://127.0.0.1:{port}")
    try:
        if layout in ("bare", "textbook"):
            env = {**base_env(), "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
            env.update(SLACK_API_URL=fakes_url + "/api/", PORT=str(port))
            env.update(OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=fakes_url + "/v1")
            module = "bench.bare_bolt" if layout == "bare" else "bench.textbook_bot"
            target.procs.append(spawn(layout, ["-m", module], env, workdir))
            await wait_healthy(target.url, target.procs[0])
        else:
            split = layout == "split"
            extra = {"IN_PROCESS_WORKER": "false"} if split else {}
            if layout == "direct":
                extra = {"DURABLE_TURNS": "false"}
            env = app_env(fakes_url, redis_url, workdir, port, **extra)
            target.procs.append(spawn(f"{layout}-serve", [*bot, "serve"], env, workdir))
            # The worker starts after serve is healthy: serve creates and seeds the SQLite file first.
            await wait_healthy(target.url, target.procs[0])
            if split:
                target.procs.append(spawn(f"{layout}-worker", [*bot, "worker"], env, workdir))
        yield target
    finally:
        for proc in target.procs:
            proc.kill()
