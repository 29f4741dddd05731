"""Figures driven by the load generator: ack latency, turn overhead, throughput, memory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Fakes, percentile, run_load, summary_ms, unique_prefix
from bench.procs import Target


@dataclass(frozen=True)
class Scale:
    """How much of everything; `--quick` shrinks every count to a few events."""

    ack_rates: tuple[int, ...] = (50, 200, 500)
    ack_seconds: float = 4.0
    overhead_rate: float = 20.0
    overhead_turns: int = 100
    throughput_seconds: float = 4.0
    throughput_window: int = 64
    memory_conversations: int = 1000
    memory_rate: float = 400.0
    redis_turns: int = 40
    approvals: int = 20
    token_turns: int = 30
    quick_run: bool = False
    burst_events: int = 500
    burst_channels: int = 50
    burst_in_flight: int = 50

    @classmethod
    def quick(cls) -> Scale:
        return cls(
            ack_seconds=0.1,
            overhead_rate=10.0,
            overhead_turns=5,
            throughput_seconds=0.6,
            memory_conversations=20,
            memory_rate=200.0,
            redis_turns=3,
            approvals=2,
            token_turns=30,
            quick_run=True,
            burst_events=20,
            burst_channels=5,
            burst_in_flight=5,
        )


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (all sockets).

    A dropped SYN is retried by the client after 1 s, so every drop is a ~1 s ack: it is how a stalled
    event loop plus a small accept backlog shows up in the ack p99."""
    try:
        text = Path("/proc/net/netstat").read_text()
        lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0))
    except (OSError, IndexError, ValueError):
        return 0


async def ack_latency(target: Target, fakes: Fakes, scale: Scale) -> dict[str, Any]:
    """HTTP response time of POST /slack/events at each rate, model latency 2 s (turns pile up behind)."""
    await fakes.config(latency=2.0)
    out: dict[str, Any] = {}
    for rate in scale.ack_rates:
        count = max(3, int(rate * scale.ack_seconds))
        drops = listen_overflows()
        result = await run_load(target, rate, count, unique_prefix(f"ack{rate}"))
        figure = summary_ms([r[2] for r in result.ok])
        figure["listen_queue_drops"] = listen_overflows() - drops
        figure["over_1s"] = sum(1 for r in result.ok if r[2] >= 1.0)
        figure.update(errors=result.errors, offered_per_s=round(len(result.records) / max(result.send_seconds, 1e-3)))
        figure["send_lag_max_ms"] = round(result.lag_max * 1000, 1)
        out[str(rate)] = figure
        await asyncio.sleep(0.5)  # let the connection churn of one rate settle before the next
    return out


async def turn_overhead(target: Target, fakes: Fakes, scale: Scale) -> dict[str, Any]:
    """Event sent to reply posted (at the fake Slack), minus time inside the fake model; model instant.

    Paced well below saturation so queueing behind other turns is not counted as overhead."""
    await fakes.config(latency=0.0)
    await fakes.reset()
    result = await run_load(target, scale.overhead_rate, scale.overhead_turns, unique_prefix("ovh"))
    await fakes.wait_replies(len(result.ok), 30.0)
    stats = await fakes.stats()
    replies: dict[str, float] = stats["replies"]
    model: dict[str, float] = stats["model_time"]
    overheads = [replies[tag] - sent - model.get(tag, 0.0) for tag, sent, _, _ in result.ok if tag in replies]
    figure = summary_ms(overheads)
    figure["model_p50_ms"] = round(1000 * (percentile(list(model.values()), 50) or 0.0), 2)
    figure["missing"] = len(result.records) - len(overheads)
    return figure


# The streaming model of the first-token figure: its first token comes this long after the request.
FIRST_TOKEN = 0.3


async def first_token(target: Target, fakes: Fakes, scale: Scale, burst: bool = False) -> dict[str, Any]:
    """Event sent to the answer's first words visible in Slack (the first streamed markdown chunk at the fake
    Slack), with a streaming model whose first token comes at 300 ms and the rest 20 ms apart; `overhead` is
    that minus the model's own time to its first token. Paced like turn_overhead, or (`burst`) sent like the
    burst figure: 500 mentions in 50 channels, 50 requests in flight."""
    await fakes.config(latency=FIRST_TOKEN, streaming=True, token_delay=0.02)
    await fakes.reset()
    try:
        prefix = unique_prefix("ftb" if burst else "ftt")
        if burst:
            result = await run_load(
                target,
                rate=100_000,
                count=scale.burst_events,
                prefix=prefix,
                text="#long hello",
                max_seconds=90.0,
                channels=scale.burst_channels,
                concurrency=scale.burst_in_flight,
            )
        else:
            result = await run_load(target, scale.overhead_rate, scale.overhead_turns, prefix, text="#long hello")
        await fakes.wait_replies(len(result.ok), 60.0)
        stats = await fakes.stats()
    finally:
        await fakes.config(latency=0.0, streaming=False, token_delay=0.0)
    shown: dict[str, float] = stats["first_text"]
    model: dict[str, float] = stats["first_token"]
    visible = [shown[tag] - sent for tag, sent, _, _ in result.ok if tag in shown]
    overhead = [shown[tag] - sent - model.get(tag, 0.0) for tag, sent, _, _ in result.ok if tag in shown]
    return {
        "visible": summary_ms(visible),
        "overhead": summary_ms(overhead),
        "model_first_token_ms": round(1000 * (percentile(list(model.values()), 50) or 0.0), 1),
        "missing": len(result.records) - len(visible),
        "stream_calls": {k: v for k, v in stats["counts"].items() if k.endswith("Stream")},
    }


async def throughput(target: Target, fakes: Fakes, scale: Scale) -> dict[str, Any]:
    """Completed turns/s with the model instant, closed loop: at most `throughput_window` turns
    unanswered at once (more than the durable queue's 32 per worker, so it is always saturated).

    Counted over the sending period after its first half second, so start-up does not dilute it."""
    await fakes.config(latency=0.0)
    await fakes.reset()
    cpu_before = sum(p.cpu_seconds() for p in target.procs)
    result = await run_load(
        target,
        rate=100_000,
        count=1_000_000,
        prefix=unique_prefix("thr"),
        max_seconds=scale.throughput_seconds,
        window=scale.throughput_window,
        fakes_url=fakes.url,
    )
    await fakes.wait_replies(len(result.ok), 30.0)
    cpu = sum(p.cpu_seconds() for p in target.procs) - cpu_before
    stats = await fakes.stats()
    sends = [r[1] for r in result.records]
    rate = None
    if sends:
        begin, end = min(sends) + min(0.5, scale.throughput_seconds / 4), max(sends)
        done = sum(1 for at in stats["replies"].values() if begin <= at <= end)
        rate = done / max(end - begin, 1e-6)
    ack = summary_ms([r[2] for r in result.ok])
    answered = len(stats["replies"])
    return {
        "turns_per_s": None if rate is None else round(rate, 1),
        # CPU of every process of the layout (web and worker) per answered turn, at saturation.
        "cpu_ms_per_turn": round(1000 * cpu / answered, 2) if answered else None,
        "sent": len(result.records),
        "answered": len(stats["replies"]),
        "ack_p99_ms_while_saturated": ack["p99_ms"],
        "errors": result.errors,
        "unavailable_notices": stats["notices"],
    }


BURST_MODEL = 1.5


async def burst(target: Target, fakes: Fakes, scale: Scale) -> dict[str, Any]:
    """500 mentions in 50 channels sent as fast as 50 requests in flight allow, model 1.5 s: the ack times, and
    when the last reply arrived after the first event was sent."""
    await fakes.config(latency=BURST_MODEL)
    await fakes.reset()
    result = await run_load(
        target,
        rate=100_000,
        count=scale.burst_events,
        prefix=unique_prefix("brst"),
        max_seconds=90.0,
        channels=scale.burst_channels,
        concurrency=scale.burst_in_flight,
    )
    await fakes.wait_replies(len(result.ok), 60.0)
    stats = await fakes.stats()
    replies: dict[str, float] = stats["replies"]
    first = min((r[1] for r in result.records), default=0.0)
    return {
        "ack": summary_ms([r[2] for r in result.ok]),
        "last_reply_s": round(max(replies.values()) - first, 2) if replies else None,
        "sent": len(result.records),
        "answered": len(replies),
        "errors": result.errors,
    }


async def memory(target: Target, fakes: Fakes, scale: Scale) -> dict[str, Any]:
    """RSS with N conversations accepted and not yet answered, model latency 5 s.

    Sampled from /proc every 100 ms while the conversations are in flight. `rss_mb` is the peak of the
    largest process (the target is per process); `total_rss_mb` adds up web + worker in the split layout."""
    await fakes.config(latency=5.0)
    await fakes.reset()
    baseline = {p.name: p.memory_mb()[0] for p in target.procs}
    peaks = dict.fromkeys(baseline, 0.0)
    total = 0.0
    sampling = True

    async def sample() -> None:
        nonlocal total
        while sampling:
            now = {p.name: p.memory_mb()[0] for p in target.procs}
            peaks.update({name: max(peaks[name], value) for name, value in now.items()})
            total = max(total, sum(now.values()))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    result = await run_load(target, scale.memory_rate, scale.memory_conversations, unique_prefix("mem"))
    await asyncio.sleep(2.0)  # turns started at the end of the burst reach the model
    stats = await fakes.stats()
    sampling = False
    await sampler
    answered = stats["posts"]
    return {
        "rss_mb": round(max(peaks.values()), 1),
        "total_rss_mb": round(total, 1),
        "peak_mb_by_process": {name: round(value, 1) for name, value in peaks.items()},
        "baseline_mb_by_process": {name: round(value, 1) for name, value in baseline.items()},
        "accepted": len(result.ok),
        "in_flight": len(result.ok) - answered,
        "at_model_peak": stats["model_peak"],
    }
