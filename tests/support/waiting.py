"""Waiting for background work in tests: poll a condition with a bounded deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable


async def eventually(check: Callable[[], object], within: float = 10.0) -> None:
    """Until `check()` is true (awaited when it returns an awaitable, e.g. a database read)."""
    deadline = time.monotonic() + within
    while True:
        met = check()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
