"""Scripted model behaviour shared by the approval tests of every platform."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from bot.types import ApprovalRequest
from tests.support.fake_openai import call, calls, last_message, text, tool_results, unstamped
from tests.support.harness import STAFF, Harness
from tools.db import Database
from tools.tables import MaintenanceRequest

SCHEDULE = {
    "property_id": "P-1001",
    "issue_type": "plumbing",
    "priority": "high",
    "description": "Kitchen sink is leaking under the cabinet",
    "preferred_date": None,
}


# The onboard_tenant arguments of the onboarding tests: Jane Doe to P-1001 for 2027.
JANE = {
    "tenant_name": "Jane Doe",
    "email": "jane.doe@example.com",
    "phone": None,
    "property_id": "P-1001",
    "start_date": "2027-01-01",
    "months": 12,
    "monthly_rent": 2400,
    "deposit": None,
}


def schedule_then_report(request: dict[str, Any]) -> dict[str, Any]:
    """The model asks to schedule on a user message, and reports the latest tool outcome otherwise."""
    if last_message(request)["role"] == "user":
        return calls(call("schedule_maintenance", SCHEDULE))
    return text("outcome: " + json.dumps(tool_results(request)[-1]))


async def ask_for_approval(h: Harness, user: str = STAFF) -> ApprovalRequest:
    """A staff member asks for maintenance; the one approval request, its card "posted" as an adapter would."""
    h.fake.default = schedule_then_report
    replies = await h.say(user, "Please schedule a plumber at P-1001, the sink leaks")
    approvals = [r for r in replies if isinstance(r, ApprovalRequest)]
    assert len(approvals) == 1, replies
    # As an adapter does once the card is posted: the sweeper closes (and follows up on) posted cards only.
    await h.desk.attach_card(approvals[0].approval.id, {"channel": "C1", "ts": "1700000000.000100"})
    return approvals[0]


def call_what_the_user_asks(request: dict[str, Any]) -> dict[str, Any]:
    """The user message is `{"tool": ..., "args": ...}`: call it, then echo the results as JSON text."""
    last = last_message(request)
    if last["role"] == "user":
        wanted = json.loads(unstamped(last["content"]))
        return calls(call(wanted["tool"], wanted["args"]))
    return text(json.dumps(tool_results(request)))


async def requests_with_key(db: Database, key: str) -> int:
    """How many maintenance requests an approval (its id is the idempotency key) created."""
    async with db.session() as session:
        stmt = select(func.count()).select_from(MaintenanceRequest).where(MaintenanceRequest.idempotency_key == key)
        return int((await session.execute(stmt)).scalar_one())
