"""`propbot serve` on every core: the web process answers Slack and Teams (verify, de-duplicate, enqueue, ack) and
starts `propbot worker` processes beside it for the turns (WEB_CONCURRENCY processes in all), so a burst of turns
never shares the event loop, or the core, of the acks. The workers are restarted when they die and stopped with
the server; a worker whose server died is stopped by the kernel (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys

log = logging.getLogger(__name__)

RESTART_AFTER = 1.0  # seconds before a dead worker is started again, doubling to RESTART_CAP while it keeps dying
RESTART_CAP = 30.0
STAYED_UP = 60.0  # a worker that ran this long before dying is restarted at once


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class WorkerProcesses:
    """`count` `propbot worker` processes, kept running until `stop`."""

    def __init__(self, count: int, env: dict[str, str] | None = None) -> None:
        self.count = count
        self.env = env  # None: this process's environment
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        self._watchers = [asyncio.create_task(self._keep(i), name=f"worker-{i}") for i in range(self.count)]

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "worker",
            stdin=subprocess.DEVNULL,
            env=self.env,
            preexec_fn=_die_with_parent,
        )

    async def _keep(self, index: int) -> None:
        pause = RESTART_AFTER
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            process = await self._spawn()
            self.processes[index] = process
            code = await process.wait()
            if self._stopping:
                return
            ran = asyncio.get_running_loop().time() - started
            pause = RESTART_AFTER if ran >= STAYED_UP else min(pause * 2, RESTART_CAP)
            log.warning("turn worker %d (pid %d) exited with %s; starting it again", index, process.pid, code)
            await asyncio.sleep(0 if ran >= STAYED_UP else pause)

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
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)
