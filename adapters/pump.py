"""The task that sends a streamed answer's updates, for every platform: one flush at a time (each waits for the
one before, so the platform sees them in order), at most one every `interval` once the stream has started, and
none after `stop` (which lets a flush in flight finish: cut, a stream could be left started without its id)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable


class Pump:
    def __init__(self, flush: Callable[[], Awaitable[None]], interval: float, paced: Callable[[], bool]) -> None:
        self.flush = flush  # sends what piled up since the last flush
        self.interval = interval
        self.paced = paced  # True once updates are to be spaced (the first goes at once)
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushed_at = 0.0

    def kick(self, name: str) -> None:
        """Something piled up: flush it soon."""
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        while not self._closed.is_set():
            await self._wake.wait()
            self._wake.clear()
            wait = self._flushed_at + self.interval - time.monotonic()
            if wait > 0 and self.paced():
                # Batching, but the end of the answer does not wait for it: `stop` cuts the wait short.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), wait)
            if self._closed.is_set():
                return
            await self.flush()
            self._flushed_at = time.monotonic()

    async def stop(self) -> None:
        """No more flushes; returns once a flush in flight has finished."""
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            await self._task
