"""The audit trail in Redis: every kind of event lands in `pb:audit`, redacted, bounded, readable."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from bot.observability.audit import AuditEvent, FanoutAudit, LogAudit, result_summary
from bot.observability.audit_stream import RedisStreamAudit, read_audit
from bot.store.keys import AUDIT_STREAM
from bot.store.redis import connect
from bot.types import Approval, ApprovalRequest
from tests.support.harness import MANAGER, STAFF, VIEWER, Harness
from tests.support.processes import run_command
from tests.support.scripts import call_what_the_user_asks
from tools import Registry, ToolContext, builtin_tools

registry = builtin_tools()

SECRET_NOTE = "gate code 4417, alarm pin 9902"


class NoteArgs(BaseModel):
    property_id: str = Field(description="The property.")
    note: str = Field(description="A private note.")


def with_note_tool() -> Registry:
    tools = Registry()
    for spec in registry.specs():
        tools.register(spec)

    @tools.tool(sensitive=("note",))
    async def add_private_note(args: NoteArgs, ctx: ToolContext) -> dict[str, Any]:
        """Attach a private note to a property."""
        return {"saved": True}

    return tools


@pytest.fixture
async def audited(make_harness: Any, redis_url: str) -> AsyncIterator[Harness]:
    """A process whose audit goes to the log and to the Redis stream, as build_runtime wires it."""
    client = connect(redis_url)
    audit = FanoutAudit([LogAudit(), RedisStreamAudit(client)])
    h: Harness = await make_harness(rate_limit_user_per_minute=3, tools=with_note_tool(), audit=audit)
    h.fake.default = call_what_the_user_asks
    yield h
    await client.aclose()


async def ask(h: Harness, user: str, tool: str, **args: Any) -> list[Any]:
    return await h.say(user, json.dumps({"tool": tool, "args": args}))


async def request_approval(h: Harness, user: str) -> Approval:
    replies = await ask(h, user, "schedule_maintenance", **SCHEDULE)
    [approval] = [r.approval for r in replies if isinstance(r, ApprovalRequest)]
    return approval


SCHEDULE = {
    "property_id": "P-1001",
    "issue_type": "electrical",
    "priority": "low",
    "description": "Hall light flickers",
    "preferred_date": None,
}


async def test_every_kind_of_event_is_recorded(audited: Harness) -> None:
    h = audited
    client = h.store.client  # type: ignore[attr-defined]
    await ask(h, MANAGER, "get_property", property_id="P-1001")  # tool_call ok
    await ask(h, MANAGER, "get_property", property_id="P-1001")  # tool_call cached
    await ask(h, VIEWER, "schedule_maintenance", **SCHEDULE)  # refused: viewers may not
    [first] = [
        r.approval for r in await ask(h, STAFF, "schedule_maintenance", **SCHEDULE) if isinstance(r, ApprovalRequest)
    ]
    await h.decide(first.id, MANAGER)  # approved + tool_call
    [second] = [
        r.approval for r in await ask(h, STAFF, "schedule_maintenance", **SCHEDULE) if isinstance(r, ApprovalRequest)
    ]
    await h.decide(second.id, MANAGER, "cancel")  # cancelled
    [third] = [
        r.approval for r in await ask(h, MANAGER, "schedule_maintenance", **SCHEDULE) if isinstance(r, ApprovalRequest)
    ]
    await ask(h, STAFF, "get_property", property_id="P-1002")  # STAFF's 3rd message
    await ask(h, STAFF, "get_property", property_id="P-1002")  # rate_limited (3 per minute)
    await h.store.update_approval_fields(third.id, {"expires_at": time.time() - 1})
    await h.desk.expire_due()  # expired

    events = await read_audit(client, limit=100)
    kinds = [(e.kind, e.outcome, e.tool) for e in events]
    assert ("tool_call", "ok", "get_property") in kinds
    assert ("tool_call", "cached", "get_property") in kinds
    assert ("refused", "refused", "schedule_maintenance") in kinds
    assert [k for k, _, _ in kinds].count("approval_requested") == 3
    for kind in ("approved", "cancelled", "expired", "rate_limited"):
        assert kind in [k for k, _, _ in kinds], kind
    executed = next(e for e in events if e.kind == "tool_call" and e.tool == "schedule_maintenance")
    assert executed.approval_id == first.id and executed.user == STAFF and executed.arguments["property_id"] == "P-1001"
    assert executed.conversation == "slack:T1:C1" and executed.duration > 0
    assert re.fullmatch(r"request_id=MR-\w+ status=scheduled property_id=P-1001", executed.result), executed.result
    approved = next(e for e in events if e.kind == "approved")
    assert approved.user == MANAGER and approved.approval_id == first.id
    limited = next(e for e in events if e.kind == "rate_limited")
    assert limited.user == STAFF
    assert [e.at for e in events] == sorted(e.at for e in events)


async def test_sensitive_arguments_are_redacted_in_the_stream(audited: Harness) -> None:
    h = audited
    await ask(h, MANAGER, "add_private_note", property_id="P-1001", note=SECRET_NOTE)
    raw = await h.redis.xrange(AUDIT_STREAM)
    assert raw, "nothing was audited"
    # Entry ids, times and durations are digits that can contain "4417" by chance; the note cannot be there.
    dumped = json.dumps([v for _, fields in raw for k, v in (fields or {}).items() if k not in ("at", "duration")])
    assert SECRET_NOTE not in dumped and "4417" not in dumped
    [event] = [e for e in await read_audit(h.redis) if e.tool == "add_private_note"]
    assert event.arguments == {"property_id": "P-1001", "note": "[redacted]"}


async def test_filters_since_and_limit(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    sink = RedisStreamAudit(client)
    try:
        for i in range(1200):
            await sink.record(
                AuditEvent(kind="tool_call", user=f"slack:T1:U{i % 3}", conversation="slack:T1:C1", tool=f"t{i % 2}")
            )
        newest = await read_audit(client, user="slack:T1:U1", tool="t0", limit=5)
        assert len(newest) == 5 and all(e.user == "slack:T1:U1" and e.tool == "t0" for e in newest)
        everything = await read_audit(client, limit=5000)
        assert len(everything) == 1200
        assert newest == [e for e in everything if e.user == "slack:T1:U1" and e.tool == "t0"][-5:]
        assert await read_audit(client, since=time.time() + 60) == []
        assert len(await read_audit(client, since=time.time() - 60, limit=10)) == 10
    finally:
        await client.aclose()


async def test_retention_by_length_and_by_age(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        # Entries from 100 days ago (explicit ids), then new ones with a 90-day age limit.
        old_ms = int((time.time() - 100 * 86400) * 1000)
        for i in range(300):
            await client.xadd(AUDIT_STREAM, {"kind": "old"}, id=f"{old_ms + i}-0")
        sink = RedisStreamAudit(client, maxlen=1000, max_age_days=90, trim_every=10)
        for _ in range(20):
            await sink.record(AuditEvent(kind="new", user="u", conversation="c"))
        kinds = [e.kind for e in await read_audit(client, limit=10_000)]
        assert kinds.count("new") == 20 and kinds.count("old") < 300  # `~` trims whole nodes only
        capped = RedisStreamAudit(client, maxlen=100, max_age_days=90)
        for _ in range(2000):
            await capped.record(AuditEvent(kind="bulk", user="u", conversation="c"))
        assert await client.xlen(AUDIT_STREAM) < 400  # ~100, give or take a macro node
    finally:
        await client.aclose()


async def test_a_redis_failure_never_breaks_the_turn(make_harness: Any) -> None:
    dead = RedisStreamAudit(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    h: Harness = await make_harness(audit=FanoutAudit([LogAudit(), dead]))
    h.fake.default = call_what_the_user_asks
    before = REGISTRY.get_sample_value("propbot_errors_total", {"kind": "audit_unavailable"}) or 0.0
    replies = await ask(h, MANAGER, "get_property", property_id="P-1001")
    assert '"ok": true' in replies[-1].text
    after = REGISTRY.get_sample_value("propbot_errors_total", {"kind": "audit_unavailable"}) or 0.0
    assert after == before + 1


# -- the CLI, as an operator runs it -----------------------------------------------------------


async def run_cli(tmp_path: Path, redis_url: str | None, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OPENAI_"))}
    env["REDIS_URL"] = redis_url or ""
    return await run_command(list(args), env, tmp_path)


async def test_cli_audit_and_approvals(audited: Harness, tmp_path: Path, redis_url: str) -> None:
    h = audited
    await ask(h, MANAGER, "add_private_note", property_id="P-1001", note=SECRET_NOTE)
    await ask(h, VIEWER, "get_property", property_id="P-1001")
    [pending] = [
        r.approval for r in await ask(h, STAFF, "schedule_maintenance", **SCHEDULE) if isinstance(r, ApprovalRequest)
    ]

    code, out, err = await run_cli(tmp_path, redis_url, "audit")
    assert code == 0, err
    assert "TIME (UTC)" in out and "add_private_note" in out and "note=[redacted]" in out
    assert "approval_requested" in out and SECRET_NOTE not in out

    code, out, err = await run_cli(tmp_path, redis_url, "audit", "--user", VIEWER, "--since", "1h", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and {line["user"] for line in lines} == {VIEWER}
    assert lines[0]["tool"] == "get_property" and lines[0]["outcome"] in ("ok", "cached")

    code, out, _ = await run_cli(tmp_path, redis_url, "audit", "--tool", "add_private_note", "--limit", "1", "--json")
    assert code == 0 and len(out.splitlines()) == 1

    code, out, err = await run_cli(tmp_path, redis_url, "approvals")
    assert code == 0, err
    assert pending.id in out and "schedule_maintenance" in out and STAFF in out and "slack:T1:C1" in out
    assert " 59m" in out  # expires in (approval_ttl defaults to an hour)


async def test_a_cancel_records_which_request_it_cancelled(audited: Harness) -> None:
    h = audited
    [approval] = [
        r.approval
        for r in await ask(h, STAFF, "cancel_maintenance_request", request_id="MR-5001")
        if isinstance(r, ApprovalRequest)
    ]
    await h.decide(approval.id, MANAGER)
    [event] = [e for e in await read_audit(h.redis) if e.kind == "tool_call"]
    assert event.result.startswith("request_id=MR-5001 status=cancelled"), event.result


def test_result_summary_keeps_identifying_keys_only() -> None:
    data = {"request_id": "MR-1", "status": "done", "gate_id": "4417", "notes": "call first", "items": [1], "count": 2}
    assert result_summary(data, sensitive=("gate_id",)) == "request_id=MR-1 status=done gate_id=[redacted] count=2"
    assert result_summary([{"id": "P-1"}]) == "" and result_summary(None) == ""


async def test_cli_table_fits_120_columns_and_json_keeps_everything(redis_url: str, tmp_path: Path) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    teams_user = "teams:00000000-0000-0000-0000-000000000001"
    long_args = {"request_id": "MR-5001", "reason": "the tenant asked us to wait until the landlord agrees " * 3}
    try:
        sink = RedisStreamAudit(client)
        for kind, outcome in [("approval_requested", "approval_requested"), ("tool_call", "exception")]:
            await sink.record(
                AuditEvent(
                    kind=kind,
                    user=teams_user,
                    conversation="teams:tenant-0001:19:abcdefabcdefabcdef@thread.tacv2;messageid=1700000000000",
                    tool="cancel_maintenance_request",
                    arguments=long_args,
                    outcome=outcome,
                    duration=1.234,
                    detail="cancel_maintenance_request failed because of an internal error." * 2,
                    result="request_id=MR-5001 status=cancelled property_id=P-1004",
                    approval_id="Zq3h0Jx5tB9mW2yR8uLk1A",
                )
            )
    finally:
        await client.aclose()
    code, out, err = await run_cli(tmp_path, redis_url, "audit")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and max(len(line) for line in lines) <= 120, "\n".join(lines)
    assert lines[0].split() == ["TIME", "(UTC)", "EVENT", "USER", "TOOL", "MS", "DETAILS"]
    assert "tool_call exception" in lines[2] and "1234" in lines[2]
    assert "request_id=MR-5001" in lines[2] and "cancel_maintenance" in lines[2] and "teams:" in lines[2]
    code, out, _ = await run_cli(tmp_path, redis_url, "audit", "--json")
    [_, raw] = [json.loads(line) for line in out.splitlines()]
    assert raw["user"] == teams_user and raw["arguments"] == long_args and raw["conversation"].endswith("0000")
    assert raw["result"].endswith("property_id=P-1004") and raw["approval_id"] == "Zq3h0Jx5tB9mW2yR8uLk1A"


async def test_cli_needs_redis_and_checks_its_arguments(tmp_path: Path) -> None:
    for command in ("audit", "approvals"):
        code, _, err = await run_cli(tmp_path, None, command)
        assert code == 2 and "REDIS_URL is not set" in err and "Traceback" not in err
    code, _, err = await run_cli(tmp_path, "redis://127.0.0.1:1", "audit", "--since", "yesterday-ish")
    assert code == 2 and "not a duration" in err


async def test_without_redis_the_log_line_carries_a_feedback_comment_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="propbot.audit")
    comment = "wrong house\nuser=teams:evil outcome=good"  # a newline must not forge a second line
    event = AuditEvent(kind="feedback", user="teams:t:u", conversation="c", tool="get_property", outcome="bad")
    await LogAudit().record(event.model_copy(update={"detail": comment}))
    [line] = [r.getMessage() for r in caplog.records if r.name == "propbot.audit"]
    assert line.startswith("audit feedback tool=get_property user=teams:t:u outcome=bad comment=")
    assert "wrong house" in line and "\n" not in line
