"""The benchmark: `python -m bench.run [--quick] [--out bench/results/latest.json] [--profile DIR]`.

Starts its own redis-server, the fakes (own process), and for each layout fresh propbot processes (or
the bare Bolt app), drives them from a separate load process, prints a table and writes JSON. Each
layout gets a fresh deployment per group of figures, so a backlog left by one (the ack figure queues
thousands of 2 s turns) never slows the next.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import figures, figures_state, profile, report
from bench.figures import Scale
from bench.harness import Fakes, warm_up
from bench.procs import ROOT, deployment, start_fakes
from tests.support.redis_server import RedisServer

LAYOUTS = ("inproc", "split", "direct", "textbook", "bare")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


GROUPS = ("ack", "overhead", "burst", "first_token", "memory")


async def run_layout(
    layout: str,
    scale: Scale,
    fakes: Fakes,
    redis: RedisServer,
    workdir: Path,
    profile_dir: Path | None,
    launcher: Path | None,
    only: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The figures of one layout; `only` names groups of GROUPS to run (empty: all)."""
    session = fakes.session
    out: dict[str, Any] = {}
    profiles: list[Path] = []
    propbot = layout not in ("bare", "textbook")

    def fresh() -> Any:
        redis.flushall()
        return deployment(layout, fakes.url, redis.url, workdir, launcher)

    def want(group: str) -> bool:
        return not only or group in only

    if want("ack"):
        async with fresh() as target:
            await warm_up(target, fakes)
            say(f"[{layout}] ack latency")
            out["ack"] = await figures.ack_latency(target, fakes, scale)
    if want("overhead"):
        async with fresh() as target:
            await warm_up(target, fakes)
            say(f"[{layout}] turn overhead")
            with profile.recording(target.procs, profile_dir, f"overhead-{layout}") as files:
                out["overhead"] = await figures.turn_overhead(target, fakes, scale)
            profiles += files
            if propbot:
                say(f"[{layout}] redis round trips")
                out["redis"] = await figures_state.redis_per_turn(target, fakes, scale, redis.url, session)
            if layout == "inproc":
                say(f"[{layout}] approval round trip")
                out["approval"] = await figures_state.approval_round_trip(target, fakes, scale, session)
                say(f"[{layout}] prompt tokens")
                out["tokens"] = await figures_state.prompt_token_figure(target, fakes, scale, session)
                if not scale.quick_run:
                    say(f"[{layout}] prompt tokens, 80 turns")
                    out["tokens_80"] = await figures_state.prompt_token_figure(target, fakes, scale, session, 80)
            say(f"[{layout}] throughput")
            with profile.recording(target.procs, profile_dir, f"throughput-{layout}") as files:
                out["throughput"] = await figures.throughput(target, fakes, scale)
            profiles += files
    for path in profiles:
        if path.exists():
            say(profile.summarise(path))
    if want("burst"):
        async with fresh() as target:
            await warm_up(target, fakes)
            say(f"[{layout}] burst")
            out["burst"] = await figures.burst(target, fakes, scale)
    if propbot and want("first_token"):
        for name, burst in (("first_token", False), ("first_token_burst", True)):
            async with fresh() as target:
                # A deployment of its own: a process decides once whether Slack streams (the others were told no).
                await fakes.config(streaming=True)
                await warm_up(target, fakes)
                say(f"[{layout}] {name}")
                out[name] = await figures.first_token(target, fakes, scale, burst=burst)
    if propbot and want("memory"):
        async with fresh() as target:
            await warm_up(target, fakes)
            say(f"[{layout}] memory")
            out["memory"] = await figures.memory(target, fakes, scale)
    return out


async def run(
    scale: Scale,
    layouts: list[str],
    profile_dir: Path | None,
    launcher: Path | None,
    only: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if scale == Scale.quick() else "full",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "layouts": {},
    }
    with tempfile.TemporaryDirectory(prefix="propbot-bench-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis")
        redis.start()
        fakes_proc, fakes_url = start_fakes(workdir)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as session:
                fakes = Fakes(fakes_url, session)
                for layout in layouts:
                    figures_of = await run_layout(layout, scale, fakes, redis, workdir, profile_dir, launcher, only)
                    for shared in ("approval", "tokens", "tokens_80"):
                        if shared in figures_of:
                            results[shared] = figures_of.pop(shared)
                    results["layouts"][layout] = figures_of
        finally:
            fakes_proc.kill()
            redis.stop()
    results["seconds"] = round(time.monotonic() - started, 1)
    report.add_ratios(results)
    results["targets"] = report.evaluate(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="propbot benchmark (see docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="a few events per figure (CI smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--layouts", default=",".join(LAYOUTS), help="comma-separated: inproc,split,direct,textbook,bare"
    )
    parser.add_argument(
        "--only", default="", help=f"experiments: comma-separated figure groups ({','.join(GROUPS)}); default all"
    )
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of the throughput figure here")
    parser.add_argument(
        "--launcher",
        type=Path,
        help="experiments: a Python file run instead of `-m bot` (e.g. one that monkeypatches a candidate change)",
    )
    args = parser.parse_args()
    layouts = [name for name in args.layouts.split(",") if name]
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"unknown layouts: {', '.join(sorted(unknown))}")
    only = frozenset(name for name in args.only.split(",") if name)
    if only - set(GROUPS):
        parser.error(f"unknown figure groups: {', '.join(sorted(only - set(GROUPS)))}")
    scale = Scale.quick() if args.quick else Scale()
    launcher = args.launcher.resolve() if args.launcher else None
    results = asyncio.run(run(scale, layouts, args.profile, launcher, only))
    report.write(results, args.out)
    print(report.table(results))
    print()
    print(report.targets_table(results["targets"]))
    print(f"\n{results['mode']} run in {results['seconds']} s; JSON: {args.out}")


if __name__ == "__main__":
    main()
