"""Approvals keep to the permissions when they run: a role removed while a request waited refuses the run,
and the follow-up after a decision never acts on anyone's words with the requester's tools."""

from __future__ import annotations

import time
from typing import Any

from bot.core.permissions import parse_permissions, same_person
from bot.types import ApprovalStatus, DecisionOutcome
from tests.support.fake_openai import call, calls, last_message, offered_tools, text
from tests.support.harness import MANAGER, PERMISSIONS_YAML, STAFF, VIEWER, AuditList, Harness
from tests.support.scripts import SCHEDULE, requests_with_key, schedule_then_report


async def test_a_role_removed_while_the_request_waited_refuses_the_approved_call(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.default = schedule_then_report
    [request] = await h.say(STAFF, "schedule a plumber at P-1001")
    approval_id = request.approval.id  # type: ignore[union-attr]
    # Redeployed with staff demoted to viewer; the approval survived in Redis.
    demoted = PERMISSIONS_YAML.replace('"slack:T1:USTAFF": staff', '"slack:T1:USTAFF": viewer')
    audit = AuditList()
    later = await h.another_process(permissions=demoted, audit=audit)
    result = await h.decide(approval_id, MANAGER, process=later)
    assert result.outcome is DecisionOutcome.FAILED
    assert "no longer allowed to use schedule maintenance" in result.message and "nothing was done" in result.message
    assert await requests_with_key(h.db, approval_id) == 0
    stored = await h.store.get_approval(approval_id)
    assert stored is not None and stored.status is ApprovalStatus.FAILED
    assert stored.result is not None and stored.result["executed"] is False
    assert audit.kinds() == ["approved", "refused"]
    refused = audit.events[-1]
    assert refused.user == MANAGER and refused.approval_id == approval_id and refused.tool == "schedule_maintenance"
    assert refused.detail.startswith("at execution: ") and "no longer allowed to use" in refused.detail


async def test_an_approvers_role_removed_before_a_recovered_run_refuses_it(make_harness: Any) -> None:
    """A process claimed the approval and died; by the time the sweeper finishes the run, the approver may no
    longer approve. The run is refused: an approval counts only while its approver may still give it."""
    h: Harness = await make_harness()
    h.fake.default = schedule_then_report
    [request] = await h.say(STAFF, "schedule a plumber at P-1001")
    approval_id = request.approval.id  # type: ignore[union-attr]
    claimed_at = time.time() - 600
    await h.store.mark_running(approval_id, claimed_at)  # the desk indexes the claim before making it
    won, _ = await h.store.transition(
        approval_id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, claimed_at, {"decided_by": MANAGER}
    )
    assert won
    demoted = PERMISSIONS_YAML.replace('"slack:T1:UMANAGER": manager', '"slack:T1:UMANAGER": staff')
    audit = AuditList()
    later = await h.another_process(permissions=demoted, audit=audit)
    [result] = await later.desk.recover_stalled(older_than=300)
    assert result.outcome is DecisionOutcome.FAILED
    assert "no longer allowed to approve schedule maintenance" in result.message
    assert await requests_with_key(h.db, approval_id) == 0
    stored = await h.store.get_approval(approval_id)
    assert stored is not None and stored.status is ApprovalStatus.FAILED and stored.result is not None
    assert stored.result["executed"] is False
    assert audit.kinds() == ["refused"] and audit.events[0].user == MANAGER


def act_on_the_newest_words(request: dict[str, Any]) -> dict[str, Any]:
    """A model that acts on the newest user message whenever it holds a tool that fits it, as a real model
    may do when it is handed an approval's outcome in a busy channel."""
    last = last_message(request)
    said = [m["content"] for m in request["messages"] if m["role"] == "user"][-1]
    wants_cancel = "cancel" in said and "cancel_maintenance_request" in offered_tools(request)
    if last["role"] == "user" and "plumber" in last["content"]:
        return calls(call("schedule_maintenance", SCHEDULE))
    if wants_cancel and (last["role"] == "user" or last.get("tool_call_id", "").startswith("call_approval_")):
        return calls(call("cancel_maintenance_request", {"request_id": "MR-5001"}))
    return text("noted")


async def test_a_viewers_message_is_not_acted_on_with_the_requesters_tools(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.default = act_on_the_newest_words
    [request] = await h.say(STAFF, "get a plumber to P-1001")
    approval_id = request.approval.id  # type: ignore[union-attr]
    # A viewer asks for something they may not do; they are not offered the tool, so nothing happens.
    await h.say(VIEWER, "cancel MR-5001 please")
    before = len(h.fake.requests)
    result = await h.decide(approval_id, MANAGER)
    assert result.outcome is DecisionOutcome.DONE
    # No new approval "requested by" staff for the viewer's words, and MR-5001 untouched.
    pending = await h.store.pending_approvals()
    assert [(a.tool, a.requested_by) for a in pending if a.conversation.key == "slack:T1:C1"] == []
    assert await requests_with_key(h.db, approval_id) == 1
    follow_up = h.fake.requests[before:]
    assert follow_up and all(offered_tools(r) == [] for r in follow_up)


async def test_a_call_made_anyway_after_a_decision_is_not_run_nor_blamed_on_the_requester(make_harness: Any) -> None:
    """A model may call a tool it was not offered. After a decision that call is answered unrun, and the audit
    trail does not record it as a refused call of the requester, who asked for nothing."""
    audit = AuditList()
    h: Harness = await make_harness()
    agent = await h.another_process(audit=audit)
    h.fake.default = schedule_then_report
    [request] = await h.agent.handle(h.incoming(STAFF, "schedule a plumber at P-1001"))
    approval_id = request.approval.id  # type: ignore[union-attr]
    h.fake.default = None
    h.fake.push(calls(call("cancel_maintenance_request", {"request_id": "MR-5001"})), text("done, reported"))
    result = await h.decide(approval_id, MANAGER, process=agent)
    assert result.outcome is DecisionOutcome.DONE
    assert [r.text for r in result.replies] == ["done, reported"]  # type: ignore[union-attr]
    unrun = [m for m in h.fake.requests[-1]["messages"] if m["role"] == "tool"][-1]
    assert "No tools may be used in this reply" in unrun["content"]
    assert audit.kinds() == ["approved", "tool_call"]  # the approved run, and no "refused" for the requester
    assert await h.store.pending_approvals() == []


def test_self_approval_compares_the_person_not_the_team_spelling() -> None:
    perms = parse_permissions(PERMISSIONS_YAML.replace('"slack:T1:UMANAGER": manager', '"slack:E1:UMANAGER": manager'))
    assert same_person("slack:T1:UMANAGER", "slack:E1:UMANAGER")
    assert not same_person("slack:T1:UMANAGER", "slack:T1:UMANAGER2")
    assert not same_person("slack:T1:U1", "teams:T1:U1")
    allowed, reason = perms.may_approve("slack:E1:UMANAGER", "schedule_maintenance", requested_by="slack:T1:UMANAGER")
    assert not allowed and "your own request" in reason
