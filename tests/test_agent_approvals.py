"""Risky tools wait for a person: approve once, cancel, expire, refuse, and never run twice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bot.store import keys
from bot.types import ApprovalStatus, DecisionOutcome, TextReply
from tests.support.fake_openai import text, tool_results
from tests.support.harness import MANAGER, MANAGER2, STAFF, Harness
from tests.support.peek import history_of
from tests.support.scripts import ask_for_approval, requests_with_key


async def test_staff_request_waits_and_manager_approval_runs_it_once(make_harness: Any) -> None:
    h: Harness = await make_harness()
    request = await ask_for_approval(h)
    approval = request.approval
    assert approval.status is ApprovalStatus.PENDING and approval.requested_by == STAFF
    assert approval.title and any("Plumbing" in d.value or "plumbing" in d.value for d in approval.summary)
    assert await requests_with_key(h.db, approval.id) == 0  # nothing ran yet

    result = await h.decide(approval.id, MANAGER)
    assert result.outcome is DecisionOutcome.DONE, result.message
    assert await requests_with_key(h.db, approval.id) == 1
    final = result.replies[0]
    assert isinstance(final, TextReply) and '"ok": true' in final.text and "request_id" in final.text
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.DONE and stored.decided_by == MANAGER
    assert h.fake.violations == []


async def test_twenty_concurrent_approvals_on_two_store_clients_execute_once(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    other = await h.another_process()
    results = await asyncio.gather(
        *(h.decide(approval.id, MANAGER if i % 2 else MANAGER2, process=other if i % 2 else None) for i in range(20))
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count(DecisionOutcome.DONE) == 1, outcomes
    assert outcomes.count(DecisionOutcome.ALREADY_DECIDED) == 19
    assert await requests_with_key(h.db, approval.id) == 1


async def test_cancel_creates_nothing_and_tells_the_model(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    result = await h.decide(approval.id, MANAGER, "cancel")
    assert result.outcome is DecisionOutcome.CANCELLED
    assert await requests_with_key(h.db, approval.id) == 0
    told = tool_results(h.fake.requests[-1])[-1]
    assert told["status"] == "cancelled" and told["executed"] is False
    again = await h.decide(approval.id, MANAGER)
    assert again.outcome is DecisionOutcome.ALREADY_DECIDED and await requests_with_key(h.db, approval.id) == 0


async def test_expired_approval_cannot_be_approved(make_harness: Any) -> None:
    h: Harness = await make_harness(approval_ttl=0.3)
    approval = (await ask_for_approval(h)).approval
    await until(approval.expires_at)
    result = await h.decide(approval.id, MANAGER)
    assert result.outcome is DecisionOutcome.EXPIRED
    assert await requests_with_key(h.db, approval.id) == 0
    assert tool_results(h.fake.requests[-1])[-1]["status"] == "expired"
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.EXPIRED


async def test_sweeper_expires_due_approvals(make_harness: Any) -> None:
    h: Harness = await make_harness(approval_ttl=3.0)  # "not due yet" below has seconds of margin
    approval = (await ask_for_approval(h)).approval
    assert await h.desk.expire_due() == []  # not due yet
    await until(approval.expires_at)
    swept = await h.desk.expire_due()
    assert [r.approval.id for r in swept if r.approval] == [approval.id]
    assert await h.store.pending_approvals() == []


async def test_staff_cannot_approve_and_self_approval_is_refused_by_default(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h, user=MANAGER)).approval
    refused = await h.decide(approval.id, STAFF)
    assert refused.outcome is DecisionOutcome.REFUSED and "not allowed" in refused.message
    own = await h.decide(approval.id, MANAGER)
    assert own.outcome is DecisionOutcome.REFUSED and "your own request" in own.message
    assert (await h.store.get_approval(approval.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]
    assert (await h.decide(approval.id, MANAGER2)).outcome is DecisionOutcome.DONE


async def test_self_approval_when_the_setting_allows_it(make_harness: Any) -> None:
    h: Harness = await make_harness(allow_self_approval=True)
    approval = (await ask_for_approval(h, user=MANAGER)).approval
    assert (await h.decide(approval.id, MANAGER)).outcome is DecisionOutcome.DONE


async def test_unknown_and_foreign_approval_ids_change_nothing(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    assert (await h.decide("no-such-id", MANAGER)).outcome is DecisionOutcome.NOT_FOUND
    from bot.types import Decision, DecisionAction

    foreign = Decision(
        approval_id=approval.id,
        user="slack:T2:UMANAGER",
        action=DecisionAction.APPROVE,
        platform="slack",
        workspace="T2",
    )
    assert (await h.desk.decide(foreign)).outcome is DecisionOutcome.NOT_FOUND
    assert (await h.store.get_approval(approval.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


async def test_history_is_valid_while_an_approval_is_pending(make_harness: Any) -> None:
    h: Harness = await make_harness()
    await ask_for_approval(h)
    h.fake.default = None
    h.fake.push(text("still waiting"))
    replies = await h.say(STAFF, "is it done yet?")
    assert isinstance(replies[0], TextReply) and replies[0].text == "still waiting"
    waiting = [m for m in h.fake.requests[-1]["messages"] if m["role"] == "tool"]
    assert json.loads(waiting[-1]["content"])["status"] == "pending_approval"
    assert h.fake.violations == []


async def test_an_approval_whose_process_died_after_the_claim_is_finished_once(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    # A process claims the approval and dies before running the tool (no result, still `approved`).
    claimed_at = time.time() - 600
    await h.store.mark_running(approval.id, claimed_at)  # the desk indexes the claim before making it
    won, _ = await h.store.transition(
        approval.id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, claimed_at, {"decided_by": MANAGER}
    )
    assert won and await requests_with_key(h.db, approval.id) == 0
    assert (await h.decide(approval.id, MANAGER2)).outcome is DecisionOutcome.ALREADY_DECIDED

    other = await h.another_process()
    results = await asyncio.gather(h.desk.recover_stalled(older_than=300), other.desk.recover_stalled(older_than=300))
    finished = [r for batch in results for r in batch]
    assert [r.outcome for r in finished] == [DecisionOutcome.DONE]  # one process did it, once
    assert await requests_with_key(h.db, approval.id) == 1
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.DONE
    assert "request_id" in json.dumps(tool_results(h.fake.requests[-1])[-1])
    assert await h.desk.recover_stalled(older_than=300) == []


async def test_a_recent_claim_is_left_to_the_process_running_it(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    await h.store.mark_running(approval.id, time.time())
    await h.store.transition(approval.id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, time.time(), {})
    assert await h.desk.recover_stalled(older_than=300) == []
    assert await requests_with_key(h.db, approval.id) == 0


async def test_a_decision_is_kept_when_its_conversation_cannot_be_continued(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    # The conversation's state cannot be read: Redis answers its version key with an error (WRONGTYPE).
    version = keys.version(approval.conversation.key)
    await h.redis.delete(version)
    await h.redis.rpush(version, "not a version")
    result = await h.decide(approval.id, MANAGER)
    assert result.outcome is DecisionOutcome.DONE and await requests_with_key(h.db, approval.id) == 1
    [note] = result.replies
    assert isinstance(note, TextReply) and note.is_error and note.text.startswith("Approved and done")
    await h.redis.delete(version)
    # Left unsettled: once the conversation can be read again, the sweeper writes the follow-up the click could not.
    [announced] = await h.desk.expire_due(announce_after=0)
    assert announced.outcome is DecisionOutcome.DONE and announced.replies
    told = [m for m in await history_of(h.store, approval.conversation.key) if m.get("role") == "tool"]
    assert told[-1]["tool_call_id"] == f"call_approval_{approval.id}"
    assert await requests_with_key(h.db, approval.id) == 1


async def test_an_outcome_whose_decider_stopped_before_announcing_it_is_announced_once(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    # A decider recorded the outcome and stopped before the card and the follow-up.
    now = time.time()
    await h.store.mark_running(approval.id, now)
    await h.store.transition(approval.id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, now, {"decided_by": MANAGER})
    result = {"ok": True, "summary": "Request MR-TEST created"}
    await h.store.transition(approval.id, ApprovalStatus.APPROVED, ApprovalStatus.DONE, now, {"result": result})
    assert await h.desk.expire_due() == []  # within the grace period its decider may still be announcing it
    [announced] = await h.desk.expire_due(announce_after=0)
    assert announced.outcome is DecisionOutcome.DONE and announced.approval is not None
    assert announced.message == "Approved and done: Request MR-TEST created" and announced.replies
    # Not settled (its card update failed, say): announced again later, but the follow-up is not written twice.
    await asyncio.sleep(1.1)
    [again] = await h.desk.expire_due(announce_after=0)
    assert again.replies == []
    await h.desk.settle(approval.id)
    assert await h.desk.expire_due(announce_after=0) == []
    follow_ups = [m for m in await history_of(h.store, approval.conversation.key) if m.get("role") == "tool"]
    assert sum(m["tool_call_id"] == f"call_approval_{approval.id}" for m in follow_ups) == 1


async def test_an_outcome_decided_after_the_history_expired_reaches_the_model_and_the_history(
    make_harness: Any,
) -> None:
    # The conversation's history lives HISTORY_TTL (30 days) and is trimmed; an approval lives APPROVAL_TTL and may
    # be decided after its conversation is gone. The outcome must still be told, and kept.
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    key = h.conversation().key
    await h.redis.delete(keys.history(key), keys.version(key))
    assert await history_of(h.store, key) == []

    result = await h.decide(approval.id, MANAGER)
    assert result.outcome is DecisionOutcome.DONE
    call_id = f"call_approval_{approval.id}"
    sent = h.fake.requests[-1]["messages"]
    told = [m for m in sent if m.get("tool_call_id") == call_id]
    assert len(told) == 1 and json.loads(told[0]["content"])["ok"] is True  # the model heard the outcome
    assert sent[1]["role"] == "user"  # a request that opens with the user's side, as every server accepts
    kept = await history_of(h.store, key)
    assert [m.get("tool_call_id") for m in kept if m.get("role") == "tool"] == [call_id]
    assert kept[-1]["role"] == "assistant" and kept[-1]["content"]  # and the model's follow-up about it
    assert h.fake.violations == []


async def until(moment: float) -> None:
    """Wait until the wall clock (which approval expiry reads) is past `moment`."""
    await asyncio.sleep(max(0.0, moment - time.time()) + 0.01)


class ReadsBeforeTheWinner:
    """The desk's store, except that a read of the approval returns only once every decider has read it: the
    clicks all see it pending and race at the claim, as two processes' clicks can."""

    def __init__(self, store: Any, deciders: int) -> None:
        self.store = store
        self.waiting = deciders
        self.all_read = asyncio.Event()

    async def get_approval(self, approval_id: str) -> Any:
        found = await self.store.get_approval(approval_id)
        self.waiting -= 1
        if self.waiting <= 0:
            self.all_read.set()
        await asyncio.wait_for(self.all_read.wait(), 10)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_clicks_that_all_saw_it_pending_race_at_the_claim_and_only_the_winner_runs_it(
    make_harness: Any,
) -> None:
    h: Harness = await make_harness()
    approval = (await ask_for_approval(h)).approval
    h.desk.approvals = ReadsBeforeTheWinner(h.desk.approvals, 5)
    results = await asyncio.gather(*(h.decide(approval.id, MANAGER if i % 2 else MANAGER2) for i in range(5)))
    outcomes = [r.outcome for r in results]
    assert outcomes.count(DecisionOutcome.DONE) == 1, outcomes
    assert outcomes.count(DecisionOutcome.ALREADY_DECIDED) == 4, outcomes
    assert await requests_with_key(h.db, approval.id) == 1
    called = [
        e
        for e in h.fake.requests
        if any(m.get("tool_call_id") == f"call_approval_{approval.id}" for m in e["messages"])
    ]
    assert len(called) == 1  # one follow-up, by the winner
