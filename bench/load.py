"""Signed Slack events at a target rate, from a process of its own: `python -m bench.load ...`.

Open loop: event i is sent at start + i/rate whatever happened to the earlier ones, so a slow server
shows up as latency instead of as a lower offered rate (no coordinated omission). With `--window N`
it is closed at the turn level instead: event i waits until the fakes have seen the answer to event
i - N (for throughput: the server is kept saturated without an unbounded backlog). Each event is an
`app_mention` in a channel of its own (one conversation each). Prints one JSON object: the records
[tag, sent_at (monotonic), ack seconds, HTTP status] and how far the sender fell behind its schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import sys
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

TEAM = "T1"
BOT_USER = "UBOT"
REQUEST_TIMEOUT = 15.0


def sign(body: str, secret: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def mention_body(tag: str, user: str, channel: str, text: str, thread: str | None = None) -> str:
    """An Events API delivery; the tag is the event's ts, so the bot's threaded reply names it (unless the mention
    is in the thread `thread`, where the reply goes)."""
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> bench:{tag} {text}",
        "ts": tag,
        "channel": channel,
        "team": TEAM,
        **({"thread_ts": thread} if thread else {}),
    }
    body = {
        "token": "unused",
        "team_id": TEAM,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": f"Ev{tag}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
    return json.dumps(body)


def click_body(user: str, approval_id: str, channel: str, message_ts: str) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "bench"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "bench"},
        "message": {"ts": message_ts, "type": "message", "bot_id": "BBOT"},
        "response_url": "https://hooks.invalid/unused",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "action_id": "propbot_approve",
                "block_id": "propbot_decision",
                "value": approval_id,
                "action_ts": "1",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


async def post_signed(
    session: aiohttp.ClientSession, url: str, body: str, secret: str, content_type: str = "application/json"
) -> int:
    headers = {"Content-Type": content_type, **sign(body, secret)}
    async with session.post(url, data=body.encode(), headers=headers) as resp:
        await resp.read()
        return resp.status


async def fire(args: argparse.Namespace) -> dict[str, Any]:
    records: list[list[Any]] = []
    lag_max = 0.0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=0)

    gate = asyncio.Semaphore(args.concurrency) if args.concurrency else None

    async def one(i: int) -> None:
        if gate is None:
            await send(i)
            return
        async with gate:
            await send(i)

    async def send(i: int) -> None:
        tag = f"{args.prefix}{i}"
        user = f"UB{i % args.users:03d}"
        # Each event in a channel of its own, or `--channels` channels taken in turn (turns of one channel queue).
        channel = f"CB{i % args.channels:03d}" if args.channels else f"C{tag}"
        body = mention_body(tag, user, channel, args.text)
        sent = time.monotonic()
        try:
            status = await post_signed(session, args.url, body, args.secret)
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        records.append([tag, sent, time.monotonic() - sent, status])

    answered = 0
    progress = asyncio.Event()

    async def follow(deadline: float) -> None:
        # Long-polls the fakes for the number of answered turns (the window's feedback).
        nonlocal answered
        while time.monotonic() < deadline:
            url = f"{args.fakes}/admin/wait_replies?n={answered + 1}&wait=1"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as resp:
                    answered = int((await resp.json())["replies"])
            progress.set()

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        deadline = start + args.max_seconds
        follower = asyncio.create_task(follow(deadline)) if args.window else None
        sent = 0
        # Launch every event that is due, then sleep until the next one is; never past the deadline.
        while sent < args.count and time.monotonic() < deadline:
            if args.window and sent - answered >= args.window:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), max(0.0, deadline - time.monotonic()))
                continue
            now = time.monotonic()
            due = min(args.count, int((now - start) * args.rate) + 1)
            if args.window:
                due = min(due, answered + args.window)
            elif sent < due:
                lag_max = max(lag_max, now - (start + sent / args.rate))
            while sent < due:
                tasks.append(asyncio.create_task(one(sent)))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
        elapsed = time.monotonic() - start
        if follower is not None:
            follower.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
    return {"records": records, "sent": sent, "send_seconds": elapsed, "lag_max": lag_max}


def main() -> None:
    parser = argparse.ArgumentParser(description="open-loop signed Slack event load")
    parser.add_argument("--url", required=True, help="the /slack/events URL")
    parser.add_argument("--secret", required=True, help="the signing secret")
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--count", type=int, required=True, help="events to send")
    parser.add_argument("--prefix", required=True, help="tag prefix, unique per run")
    parser.add_argument("--users", type=int, default=20, help="distinct users to rotate through")
    parser.add_argument("--text", default="hello", help="message text after the tag")
    parser.add_argument("--channels", type=int, default=0, help="spread over this many channels (0: one each)")
    parser.add_argument("--concurrency", type=int, default=0, help="at most this many requests in flight (0: any)")
    parser.add_argument("--window", type=int, default=0, help="at most this many unanswered turns (0: open loop)")
    parser.add_argument("--fakes", default="", help="the fakes' URL, for --window")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="stop sending after this long")
    result = asyncio.run(fire(parser.parse_args()))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
