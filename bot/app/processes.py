"""`propbot serve` on every core: the web process answers Slack and Teams (verify, de-duplicate, enqueue, ack) and
starts `propbot worker` processes beside it for the turns (WEB_CONCURRENCY processes in all), so a burst of turns
never shares the event loop, or the core, of the acks. The workers are restarted when they die and stopped with
the server; a worker whose server died is stopped by the kernel (PR_SET_PDEATHSIG). A worker that cannot start
at all stops the server instead: restarting it forever would keep /healthz green while no turn is answered."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from bot.errors import ConfigError

log = logging.getLogger(__name__)

RESTART_AFTER = 1.0  # seconds before a dead worker is started again, doubling to RESTART_CAP while it keeps dying
RESTART_CAP = 30.0
STAYED_UP = 60.0  # a worker that ran this long before dying is restarted at once
START_WINDOW = 15.0  # a worker that exits sooner than this after being spawned did not get going
START_ATTEMPTS = 3  # exits within START_WINDOW in a row after which the worker is taken to be unable to start
TAIL_LINES = 20  # stderr lines kept per worker, to quote its last error when it cannot start
WORKER_COMMAND = (sys.executable, "-m", "bot", "worker")


class WorkerStartFailed(ConfigError):
    """A `propbot worker` exited right after being started, again and again; the message quotes its last error."""


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _exit_status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"code {code}"


async def _relay(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    """Pass a worker's stderr on to ours as it comes, so its logs read as before, keeping its last lines."""
    while True:
        try:
            chunk = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:
            chunk = end.partial
        except asyncio.LimitOverrunError as long:
            # An over-long line goes on in pieces rather than being dropped.
            chunk = await stream.read(long.consumed)
        if not chunk:
            return
        text = chunk.decode(errors="replace")
        sys.stderr.write(text)
        sys.stderr.flush()
        tail.append(text)


class WorkerProcesses:
    """`count` `propbot worker` processes, kept running until `stop`, or until one turns out unable to start
    (`failed`)."""

    def __init__(
        self,
        count: int,
        env: dict[str, str] | None = None,
        command: Sequence[str] = WORKER_COMMAND,
        *,
        start_window: float = START_WINDOW,
        start_attempts: int = START_ATTEMPTS,
    ) -> None:
        self.count = count
        self.env = env  # None: this process's environment
        self.command = list(command)
        self.start_window = start_window
        self.start_attempts = start_attempts
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.failure: WorkerStartFailed | None = None
        self._failed = asyncio.Event()

    async def start(self) -> None:
        self._watchers = [asyncio.create_task(self._keep(i), name=f"worker-{i}") for i in range(self.count)]

    async def failed(self) -> WorkerStartFailed:
        """Wait until a worker is found unable to start (never, while they run); the watchers have given up then."""
        await self._failed.wait()
        assert self.failure is not None  # set before the event
        return self.failure

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            preexec_fn=_die_with_parent,
            limit=1024 * 1024,
        )
        if self._stopping and process.returncode is None:
            # terminate() ran while this one was being spawned and could not reach it.
            process.send_signal(signal.SIGTERM)
        return process

    async def _keep(self, index: int) -> None:
        pause = RESTART_AFTER
        quick_exits = 0
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            process = await self._spawn()
            self.processes[index] = process
            assert process.stderr is not None  # stderr=PIPE
            relay = asyncio.create_task(_relay(process.stderr, tail))
            try:
                code = await process.wait()
                await relay  # what the worker wrote last, its error when it could not start, is passed on too
            finally:
                relay.cancel()  # stop() gave up on this watcher: no task is left behind
            if self._stopping:
                return
            ran = asyncio.get_running_loop().time() - started
            quick_exits = quick_exits + 1 if ran < self.start_window else 0
            if quick_exits >= self.start_attempts:
                self._give_up(index, code, tail)
                return
            delay, pause = (0.0, RESTART_AFTER) if ran >= STAYED_UP else (pause, min(pause * 2, RESTART_CAP))
            log.warning("turn worker %d (pid %d) exited with %s; starting it again", index, process.pid, code)
            await asyncio.sleep(delay)

    def _give_up(self, index: int, code: int, tail: collections.deque[str]) -> None:
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        failure = WorkerStartFailed(
            f"a turn worker could not start (exited {self.start_attempts} times in a row within "
            f"{self.start_window:g}s of starting, last with {_exit_status(code)}): "
            + (last or "it wrote nothing to stderr")
        )
        log.error("turn worker %d: %s", index, failure)
        if self.failure is None:
            self.failure = failure
            self._failed.set()

    def terminate(self) -> None:
        """Ask every worker to finish its turns and stop (SIGTERM), without waiting."""
        self._stopping = True
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    async def stop(self, grace: float) -> None:
        """Terminate, wait up to `grace` seconds for the workers to drain, then kill what is left."""
        self.terminate()
        waits = [p.wait() for p in self.processes.values() if p.returncode is None]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), grace)
        except TimeoutError:
            for process in self.processes.values():
                if process.returncode is None:
                    log.warning("turn worker pid %d did not stop in %.0fs; killing it", process.pid, grace)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
        # A moment for the watchers to pass on the workers' last words; one pausing before a restart is cut off.
        if self._watchers:
            await asyncio.wait(self._watchers, timeout=1.0)
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)
