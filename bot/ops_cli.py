"""`propbot audit` and `propbot approvals`: read the shared state an operator asks about.

Both read Redis directly (no model, no database), so they work beside running servers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from typing import TextIO

from redis.exceptions import RedisClusterException, RedisError

from bot.audit import AuditEvent
from bot.audit_stream import read_audit
from bot.config import Settings
from bot.models import Approval
from bot.store import StoreUnavailable
from bot.store.redis_store import RedisStore

COMMANDS = frozenset({"audit", "approvals"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_since(text: str, now: float | None = None) -> float:
    """'30m', '1h', '2d' (ago) or an ISO date/time (UTC unless it names an offset) -> Unix time."""
    now = time.time() if now is None else now
    if match := _AGO.fullmatch(text.strip().lower()):
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 1h, 2d or an ISO time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="show the audit trail (needs REDIS_URL)")
    audit.add_argument("--since", type=parse_since, help="only newer events: 30m, 1h, 2d or an ISO time (UTC)")
    audit.add_argument("--user", help="only this platform user (slack:T1:U1)")
    audit.add_argument("--tool", help="only this tool")
    audit.add_argument("--limit", type=_positive, default=50, help="at most this many, the newest (default 50)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    sub.add_parser("approvals", help="list pending approvals (needs REDIS_URL)")


async def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    if not settings.redis_url:
        print(f"propbot {args.command}: REDIS_URL is not set (audit and approvals live in Redis)", file=sys.stderr)
        return 2
    store = RedisStore.from_url(settings.redis_url)
    try:
        if args.command == "audit":
            events = await read_audit(store.client, since=args.since, user=args.user, tool=args.tool, limit=args.limit)
            _print_events(events, args.json, out)
        else:
            _print_approvals(await store.pending_approvals(), out)
    except (StoreUnavailable, RedisError, RedisClusterException, OSError) as exc:
        # The class only: the message can name hosts, and the URL may carry a password.
        print(f"propbot {args.command}: cannot read Redis ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


def _print_events(events: list[AuditEvent], as_json: bool, out: TextIO) -> None:
    if as_json:
        for event in events:
            out.write(event.model_dump_json() + "\n")
        return
    if not events:
        out.write("no audit events match\n")
        return
    rows = [["TIME (UTC)", "KIND", "USER", "TOOL", "OUTCOME", "MS", "CONVERSATION", "ARGUMENTS", "DETAIL"]]
    for e in events:
        arguments = ", ".join(f"{k}={v}" for k, v in e.arguments.items())
        rows.append(
            [
                _when(e.at),
                e.kind,
                e.user,
                e.tool or "-",
                e.outcome,
                f"{e.duration * 1000:.0f}",
                e.conversation,
                _clip(arguments, 60),
                _clip(e.detail or (f"approval {e.approval_id}" if e.approval_id else ""), 60),
            ]
        )
    _table(rows, out)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _in(seconds: float) -> str:
    if seconds < 0:
        return f"expired {_span(-seconds)} ago"
    return _span(seconds)


def _span(seconds: float) -> str:
    rest = int(seconds)
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _print_approvals(pending: list[Approval], out: TextIO) -> None:
    if not pending:
        out.write("no pending approvals\n")
        return
    now = time.time()
    rows = [["ID", "TOOL", "REQUESTED BY", "CONVERSATION", "EXPIRES IN", "TITLE"]]
    for a in pending:
        who = f"{a.requested_by_name} ({a.requested_by})" if a.requested_by_name else a.requested_by
        rows.append([a.id, a.tool, who, a.conversation.key, _in(a.expires_at - now), _clip(a.title, 50)])
    _table(rows, out)
