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

from bot.config import Settings
from bot.errors import StoreUnavailable
from bot.observability.audit import AuditEvent
from bot.observability.audit_stream import read_audit
from bot.store.factory import open_store
from bot.store.redis import REDIS_ERRORS
from bot.types import Approval
from tools.text import shorten

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
    audit.add_argument(
        "--feedback", action="store_true", help="only 👍/👎 feedback on answers, with the counts by tool"
    )
    sub.add_parser("approvals", help="list pending approvals (needs REDIS_URL)")


async def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    if not settings.redis_url:
        print(f"propbot {args.command}: REDIS_URL is not set (audit and approvals live in Redis)", file=sys.stderr)
        return 2
    opened = open_store(settings.redis_url, history_ttl=settings.history_ttl)
    store, client = opened.store, opened.redis
    assert client is not None  # a REDIS_URL opens Redis
    try:
        if args.command == "audit":
            kinds = {"feedback"} if args.feedback else None
            events = await read_audit(
                client, since=args.since, user=args.user, tool=args.tool, kinds=kinds, limit=args.limit
            )
            _print_events(events, args.json, out)
            if args.feedback and events and not args.json:
                _print_feedback_counts(events, out)
        else:
            _print_approvals(await store.pending_approvals(), out)
    except (StoreUnavailable, *REDIS_ERRORS) as exc:
        # The class only: the message can name hosts, and the URL may carry a password.
        print(f"propbot {args.command}: cannot read Redis ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


TABLE_WIDTH = 120


def _when(at: float, with_year: bool = True) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S" if with_year else "%m-%d %H:%M:%S")


def _table(rows: list[list[str]], out: TextIO, width: int | None = None) -> None:
    """Columns padded to their widest cell; with `width`, the last column is clipped to what is left."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if width is not None:
        widths[-1] = max(12, width - sum(widths[:-1]) - 2 * (len(widths) - 1))
        rows = [[*row[:-1], shorten(row[-1], widths[-1])] for row in rows]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _print_feedback_counts(events: list[AuditEvent], out: TextIO) -> None:
    """Good and bad answers per tool among the events shown (an answer that used two tools counts for both)."""
    counts: dict[str, list[int]] = {}
    for event in events:
        for tool in (event.tool or "none").split(","):
            counts.setdefault(tool, [0, 0])[0 if event.outcome == "good" else 1] += 1
    out.write("\n")
    rows = [["TOOL", "GOOD", "BAD"]]
    rows += [[tool, str(good), str(bad)] for tool, (good, bad) in sorted(counts.items())]
    _table(rows, out)


def _print_events(events: list[AuditEvent], as_json: bool, out: TextIO) -> None:
    if as_json:
        for event in events:
            out.write(event.model_dump_json() + "\n")
        return
    if not events:
        out.write("no audit events match\n")
        return
    # Fits TABLE_WIDTH: the year, the conversation and the full approval id are left to --json; kind and
    # outcome share a column (they differ only for tool calls); long users and tools are clipped, and what
    # happened (result, error, arguments without nulls, approval id prefix) takes the rest of the line.
    rows = [["TIME (UTC)", "EVENT", "USER", "TOOL", "MS", "DETAILS"]]
    for e in events:
        what = e.kind if e.outcome in ("", e.kind) else f"{e.kind} {e.outcome}"
        details = [
            e.result,
            e.detail,
            ", ".join(f"{k}={v}" for k, v in e.arguments.items() if v is not None),
            f"approval={e.approval_id[:8]}" if e.approval_id else "",
        ]
        rows.append(
            [
                _when(e.at, with_year=False),
                shorten(what, 19),
                _middle(e.user, 20),
                shorten(e.tool or "-", 22),
                f"{e.duration * 1000:.0f}" if e.kind == "tool_call" else "",
                "; ".join(d for d in details if d),
            ]
        )
    _table(rows, out, TABLE_WIDTH)


def _middle(text: str, width: int) -> str:
    """Principals differ at both ends (slack:T1:U…, teams:<guid>): keep the head and the tail."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


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
        rows.append([a.id, a.tool, who, a.conversation.key, _in(a.expires_at - now), shorten(a.title, 50)])
    _table(rows, out)
