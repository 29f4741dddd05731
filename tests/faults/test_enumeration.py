"""Every command boundary of nine flows, faulted one at a time (connection dropped, reply lost, reply stalled
past the client's timeout, process killed), then recovered and checked (tests/faults/flows.py says how). The two
flows whose effects leave through the outbox (tests/faults/outbox_flows.py) are also faulted at every database
write boundary (the statement fails, or the process is killed there).

The default run covers every boundary of every flow once, with the fault kind rotating from boundary to
boundary; `pytest -m slow tests/faults` runs the whole matrix (every boundary with every kind). Both print
a table: flow x boundaries x faults -> violations, and fail on any violation.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.channel_flow import OverlapFlow
from tests.faults.db_faults import DB_KINDS, DbFault
from tests.faults.flows import FLOWS, KINDS, Flow, World
from tests.faults.outbox_flows import OUTBOX_FLOWS
from tests.faults.proxy import Fault, RedisFaultProxy
from tests.faults.runs import run_once
from tests.support.fake_openai import FakeOpenAI
from tools.db import Database


@pytest.fixture
async def world(
    proxy: RedisFaultProxy, redis_url: str, fake_openai: FakeOpenAI, sqlite_database: Database
) -> AsyncIterator[World]:
    yield World(proxy, redis_url, fake_openai, sqlite_database)


async def enumerate_flow(
    world: World, flow: Flow, every_kind: bool, writes: bool = False
) -> tuple[int, int, list[str]]:
    """(boundaries, runs, violations) of one flow: at its Redis commands, or with `writes` its database writes."""
    dry, boundaries = await run_once(world, flow, None, count_writes=writes)
    assert not dry.violations, f"{flow.name} breaks its invariants without any fault: {dry.violations}"
    assert boundaries > 0, f"{flow.name} made no {'database write' if writes else 'Redis command'}"
    violations: list[str] = []
    runs = 0
    every = DB_KINDS if writes else KINDS
    for at in range(1, boundaries + 1):
        kinds = every if every_kind else (every[at % len(every)],)
        for kind in kinds:
            if writes:
                run, _ = await run_once(world, flow, None, DbFault(at=at, kind=kind))
            else:
                run, _ = await run_once(world, flow, Fault(at=at, kind=kind))
            runs += 1
            violations += [f"{flow.name} @{at} {kind}: {v}" for v in run.violations]
    return boundaries, runs, violations


async def enumerate_all(world: World, every_kind: bool) -> None:
    table: list[tuple[str, int, int, int]] = []
    violations: list[str] = []
    plan = [(flow, False) for flow in [*FLOWS, OverlapFlow(), *OUTBOX_FLOWS]] + [(flow, True) for flow in OUTBOX_FLOWS]
    for flow, writes in plan:
        started = time.monotonic()
        boundaries, runs, found = await enumerate_flow(world, flow, every_kind, writes)
        name = f"{flow.name} (db)" if writes else flow.name
        print(
            f"\n{name}: {boundaries} boundaries, {runs} runs, {len(found)} violations, "
            f"{time.monotonic() - started:.0f}s",
            flush=True,
        )
        table.append((name, boundaries, runs, len(found)))
        violations += found
    kinds = (
        f"Redis: {', '.join(KINDS)}; database: {', '.join(DB_KINDS)}"
        if every_kind
        else f"one per boundary, rotating {'/'.join(KINDS)} (Redis), {'/'.join(DB_KINDS)} (database)"
    )
    lines = [f"fault enumeration ({kinds})", f"{'flow':<16}{'boundaries':>11}{'runs':>7}{'violations':>12}"]
    lines += [f"{name:<16}{b:>11}{r:>7}{v:>12}" for name, b, r, v in table]
    total = (sum(t[1] for t in table), sum(t[2] for t in table), len(violations))
    lines.append(f"{'all':<16}{total[0]:>11}{total[1]:>7}{total[2]:>12}")
    print("\n" + "\n".join(lines))
    assert not violations, "\n".join(violations)


async def test_every_boundary_of_every_flow_once(world: World) -> None:
    await enumerate_all(world, every_kind=False)


@pytest.mark.slow
async def test_every_boundary_of_every_flow_with_every_fault(world: World) -> None:
    await enumerate_all(world, every_kind=True)
