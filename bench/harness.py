"""What the figures share: the fakes' admin API, the load generator subprocess, percentiles, warm-up."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.load import mention_body, post_signed
from bench.procs import ROOT, SIGNING_SECRET, Target, base_env

_runs = itertools.count(1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values (reported as missing, never as 0)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def summary_ms(values: Sequence[float]) -> dict[str, Any]:
    return {"p50_ms": ms(percentile(values, 50)), "p99_ms": ms(percentile(values, 99)), "n": len(values)}


def unique_prefix(name: str) -> str:
    # Tags are event ts values and event ids; unique per run so de-duplication never drops one.
    return f"{name}{int(time.time()) % 100000}x{next(_runs)}n"


class Fakes:
    """The fakes' admin endpoints."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def _get(self, path: str, **params: Any) -> tuple[int, Any]:
        query = {k: str(v) for k, v in params.items()}
        async with self.session.get(self.url + path, params=query) as resp:
            return resp.status, await resp.json()

    async def config(
        self,
        latency: float | None = None,
        record: bool | None = None,
        streaming: bool | None = None,
        token_delay: float | None = None,
    ) -> None:
        changes = {"latency": latency, "record": record, "streaming": streaming, "token_delay": token_delay}
        body: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        async with self.session.post(self.url + "/admin/config", json=body) as resp:
            resp.raise_for_status()

    async def reset(self) -> None:
        async with self.session.post(self.url + "/admin/reset") as resp:
            resp.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        _, body = await self._get("/admin/stats")
        result: dict[str, Any] = body
        return result

    async def reply_at(self, thread: str, wait: float = 15.0) -> float | None:
        status, body = await self._get("/admin/reply", thread=thread, wait=wait)
        return float(body["at"]) if status == 200 else None

    async def card(self, thread: str, wait: float = 15.0) -> dict[str, str] | None:
        status, body = await self._get("/admin/card", thread=thread, wait=wait)
        return dict(body) if status == 200 else None

    async def update_at(self, ts: str, wait: float = 15.0) -> float | None:
        status, body = await self._get("/admin/update", ts=ts, wait=wait)
        return float(body["at"]) if status == 200 else None

    async def wait_replies(self, count: int, within: float) -> int:
        """Until `count` distinct threads have a reply or `within` seconds passed; returns how many do."""
        deadline = time.monotonic() + within
        seen = 0
        while (left := deadline - time.monotonic()) > 0:
            _, body = await self._get("/admin/wait_replies", n=count, wait=min(left, 30.0))
            seen = int(body["replies"])
            if seen >= count:
                break
        return seen

    async def wait_posts(self, count: int, within: float = 15.0) -> bool:
        """Until the fake Slack has had `count` chat.postMessage calls since the last reset."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if int((await self.stats())["posts"]) >= count:
                return True
            await asyncio.sleep(0.01)
        return False

    async def requests(self) -> list[dict[str, Any]]:
        _, body = await self._get("/admin/requests")
        result: list[dict[str, Any]] = body
        return result


@dataclass
class LoadResult:
    records: list[tuple[str, float, float, int]]  # tag, sent_at, ack seconds, status
    send_seconds: float
    lag_max: float

    @property
    def ok(self) -> list[tuple[str, float, float, int]]:
        return [r for r in self.records if r[3] == 200]

    @property
    def errors(self) -> int:
        return sum(1 for r in self.records if r[3] != 200)


async def run_load(
    target: Target,
    rate: float,
    count: int,
    prefix: str,
    text: str = "hello",
    max_seconds: float = 30.0,
    window: int = 0,
    fakes_url: str = "",
    channels: int = 0,
    concurrency: int = 0,
) -> LoadResult:
    """Fire `count` events at `rate`/s from a separate process (bench.load) and collect its records."""
    args = ["-m", "bench.load", "--url", target.events_url, "--secret", SIGNING_SECRET]
    args += ["--rate", str(rate), "--count", str(count), "--prefix", prefix, "--text", text]
    args += ["--max-seconds", str(max_seconds), "--window", str(window), "--fakes", fakes_url]
    args += ["--channels", str(channels), "--concurrency", str(concurrency)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=base_env(), stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), max_seconds + 40)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    data = json.loads(out or b"{}")
    records = [(str(r[0]), float(r[1]), float(r[2]), int(r[3])) for r in data.get("records", [])]
    return LoadResult(records, float(data.get("send_seconds", 0.0)), float(data.get("lag_max", 0.0)))


async def send_one(
    session: aiohttp.ClientSession,
    target: Target,
    tag: str,
    text: str,
    user: str,
    channel: str,
    thread: str | None = None,
) -> tuple[float, int]:
    """One signed mention from the orchestrator (sequential figures); returns (sent_at, status)."""
    sent = time.monotonic()
    body = mention_body(tag, user, channel, text, thread)
    status = await post_signed(session, target.events_url, body, SIGNING_SECRET)
    return sent, status


async def warm_up(target: Target, fakes: Fakes, users: int = 20, within: float = 60.0) -> None:
    """One turn per bench user: fills user-name caches, opens connection pools, proves a worker runs.
    Fails the run when no reply comes (a layout that never answers must not report figures)."""
    await fakes.config(latency=0.0, record=False)
    await fakes.reset()
    result = await run_load(target, rate=50, count=users, prefix=unique_prefix("warm"))
    got = await fakes.wait_replies(len(result.ok), within)
    if not result.ok or got < len(result.ok):
        logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in target.procs)
        raise RuntimeError(f"{target.layout}: {got} of {len(result.records)} warm-up turns answered\n{logs}")
    await fakes.reset()
