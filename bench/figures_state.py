"""Sequential figures: Redis round trips per plain turn, approval round trip, prompt tokens."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench.figures import Scale
from bench.harness import Fakes, send_one, summary_ms, unique_prefix
from bench.load import click_body, post_signed
from bench.procs import SIGNING_SECRET, Target
from bench.tokens import conversation_script, prompt_tokens


async def _redis_snapshot(client: aioredis.Redis) -> tuple[dict[str, int], int]:
    """Calls per command (INFO commandstats) and socket reads processed (INFO stats), in one INFO."""
    info: dict[str, Any] = await client.info("commandstats", "stats")
    calls: dict[str, int] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_") and isinstance(value, dict):
            calls[key.removeprefix("cmdstat_")] = int(value["calls"])
    return calls, int(info["total_reads_processed"])


async def redis_per_turn(
    target: Target, fakes: Fakes, scale: Scale, redis_url: str, session: aiohttp.ClientSession
) -> dict[str, Any]:
    """Redis work for N plain turns (no tools), one at a time so nothing is batched across turns.

    commands: the INFO commandstats difference. It counts each command of a MULTI/EXEC (and MULTI and
    EXEC themselves) and each redis.call inside a Lua script separately, so it over-counts trips.
    round trips: the `total_reads_processed` difference. Redis reads a client's socket once per batch
    of bytes that arrived together, and a client sends one batch per round trip (a pipeline or a
    MULTI/EXEC is one write; a script is one EVALSHA), so reads = round trips. The idle background
    (the worker's blocking XREADGROUP and XAUTOCLAIM once a second, the approval sweep) is measured
    over an idle window first and subtracted, with the INFO calls of the measurement itself."""
    await fakes.config(latency=0.0)
    await fakes.reset()
    client = aioredis.Redis.from_url(redis_url)
    try:
        idle_before = await _redis_snapshot(client)
        idle_started = time.monotonic()
        time_idle = 2.0
        await asyncio.sleep(time_idle)
        idle_after = await _redis_snapshot(client)
        idle_seconds = time.monotonic() - idle_started
        idle_cmds = (sum(idle_after[0].values()) - sum(idle_before[0].values()) - 1) / idle_seconds
        idle_reads = (idle_after[1] - idle_before[1] - 1) / idle_seconds

        before = await _redis_snapshot(client)
        started = time.monotonic()
        prefix = unique_prefix("rt")
        answered = 0
        for i in range(scale.redis_turns):
            tag = f"{prefix}{i}"
            await send_one(session, target, tag, "hello", f"UB{i % 20:03d}", f"C{tag}")
            answered += await fakes.reply_at(tag) is not None
        # The turn's last commands (XACK, XDEL) follow the reply; give them a moment to land.
        await asyncio.sleep(0.2)
        after = await _redis_snapshot(client)
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    turns = max(answered, 1)
    by_command = {
        name: round((after[0].get(name, 0) - before[0].get(name, 0)) / turns, 2)
        for name in sorted(after[0])
        if after[0].get(name, 0) != before[0].get(name, 0)
    }
    by_command["info"] = round(by_command.get("info", 0) - 1 / turns, 2)
    commands = (sum(after[0].values()) - sum(before[0].values()) - 1 - idle_cmds * elapsed) / turns
    trips = (after[1] - before[1] - 1 - idle_reads * elapsed) / turns
    return {
        "commands_per_turn": round(commands, 2),
        "round_trips_per_turn": round(trips, 2),
        "turns": answered,
        "idle_commands_per_s": round(idle_cmds, 2),
        "by_command_per_turn": {k: v for k, v in by_command.items() if v},
    }


async def approval_round_trip(
    target: Target, fakes: Fakes, scale: Scale, session: aiohttp.ClientSession
) -> dict[str, Any]:
    """Click (signed block_actions) to chat.update arriving at the fake Slack; model instant.

    Each round: a staff member asks to schedule maintenance, the card is posted, a manager approves.
    The click's path: ack, claim (Lua), run the tool once (SQLite write), record the result, continue
    the conversation (one model call), replace the card."""
    await fakes.config(latency=0.0)
    await fakes.reset()
    args = {
        "property_id": "P-1001",
        "issue_type": "plumbing",
        "priority": "high",
        "description": "Kitchen sink leaks under the cabinet.",
        "preferred_date": None,
    }
    prefix = unique_prefix("apr")
    times: list[float] = []
    for i in range(scale.approvals):
        tag, channel = f"{prefix}{i}", f"CAPR{prefix}{i}"
        await send_one(session, target, tag, f"#call schedule_maintenance {json.dumps(args)}", "UB001", channel)
        card = await fakes.card(tag)
        if card is None:
            continue
        body = click_body("UMANAGER", card["approval"], channel, card["ts"])
        clicked = time.monotonic()
        await post_signed(session, target.events_url, body, SIGNING_SECRET, "application/x-www-form-urlencoded")
        updated = await fakes.update_at(card["ts"])
        if updated is not None:
            times.append(updated - clicked)
    figure = summary_ms(times)
    figure["missing"] = scale.approvals - len(times)
    return figure


async def prompt_token_figure(
    target: Target, fakes: Fakes, scale: Scale, session: aiohttp.ClientSession, turns: int | None = None
) -> dict[str, Any]:
    """A scripted conversation (one thread, tools on most turns) with every model request recorded,
    counted against the naive baseline (see bench.tokens)."""
    await fakes.config(latency=0.0, record=True)
    await fakes.reset()
    prefix = unique_prefix("tok")
    channel = f"CTOK{prefix}"
    answered = 0
    try:
        for i, text in enumerate(conversation_script(turns or scale.token_turns)):
            # One conversation: the first mention starts a thread (CHANNEL_MEMORY=thread), the rest are in it.
            tag = f"{prefix}{i}"
            await send_one(session, target, tag, text, "UB002", channel, thread=f"{prefix}0" if i else None)
            answered += await fakes.wait_posts(i + 1)
        requests = await fakes.requests()
    finally:
        await fakes.config(record=False)
    figure = prompt_tokens(requests, max(answered, 1))
    figure["turns"] = answered
    return figure
