"""Deciding approvals: a click claims the approval atomically, runs the tool once, and the
conversation continues to a final answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.core import texts
from bot.core.approval_outcomes import (
    NOT_CONTINUED,
    Stage,
    already,
    ran_words,
    store_failed,
    who,
)
from bot.core.approved_call import runnable_call, steps_on
from bot.core.gate import Gate
from bot.core.loop import ToolLoop
from bot.core.port import LiveReply
from bot.core.tool_runner import ToolRunner
from bot.core.transcript import Transcript
from bot.errors import ModelError, StoreUnavailable
from bot.observability import metrics
from bot.observability.audit import AuditEvent, AuditSink
from bot.store.base import Approvals, Deliveries
from bot.types import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionAction,
    DecisionOutcome,
    DecisionResult,
    Progress,
    ProgressState,
    Reply,
    TextReply,
)
from tools import Registry

log = logging.getLogger(__name__)


# Where a decision's follow-up is shown as it happens, for the approval being decided.
ShowIn = Callable[[Approval], LiveReply]

# How long a losing click waits for the winner's tool to finish; a little over the default tool timeout.
SETTLE_WAIT = 20.0


# A claim older than this whose tool never reported is taken to belong to a dead process.
STALLED_AFTER = 300.0

_OUTCOMES = {
    ApprovalStatus.DONE: DecisionOutcome.DONE,
    ApprovalStatus.FAILED: DecisionOutcome.FAILED,
    ApprovalStatus.CANCELLED: DecisionOutcome.CANCELLED,
    ApprovalStatus.EXPIRED: DecisionOutcome.EXPIRED,
}

# After an unknown outcome (a timeout or an error once the tool had started), the next run under the same
# idempotency key is due after this many seconds, doubling each time up to the cap.
UNKNOWN_RETRY = 30.0
UNKNOWN_RETRY_CAP = 900.0


class ApprovalDesk:
    """Clicks, expiry and recovery of approvals; built by the composition root from the parts it uses."""

    def __init__(
        self,
        approvals: Approvals,
        deliveries: Deliveries,
        registry: Registry,
        gate: Gate,
        runner: ToolRunner,
        audit: AuditSink,
        transcript: Transcript,
        loop: ToolLoop,
        *,
        settle_wait: float = SETTLE_WAIT,
        stalled_after: float = STALLED_AFTER,
    ) -> None:
        self.approvals = approvals
        self.deliveries = deliveries
        self.registry = registry
        self.gate = gate
        self.runner = runner
        self.audit = audit
        self.transcript = transcript
        self.loop = loop
        self.settle_wait = settle_wait
        self.stalled_after = stalled_after
        # Approvals whose follow-up could not be written here: left unsettled for the sweeper to announce again.
        self._not_continued: set[str] = set()

    async def attach_card(self, approval_id: str, card_ref: dict[str, Any]) -> None:
        """Remember where the adapter posted an approval's card, so any process can replace it later."""
        await self.approvals.update_approval_fields(approval_id, {"card_ref": card_ref})

    async def decide(self, decision: Decision, show: ShowIn | None = None) -> DecisionResult:
        """Decide one click. Whatever fails on the way, the clicker is told what is known to have happened.
        `show(approval)` gives where to show the approved call running and the model's follow-up as it is
        written (asked once the click is known to change the approval)."""
        stage = Stage()
        try:
            return await self._decide(decision, stage, show)
        except StoreUnavailable:
            log.warning("deciding approval %s: the state store failed at stage %s", decision.approval_id, stage.at)
            return store_failed(decision, stage)

    async def _decide(self, decision: Decision, stage: Stage, show: ShowIn | None) -> DecisionResult:
        approval = await self.approvals.get_approval(decision.approval_id)
        if (
            approval is None
            or approval.conversation.platform != decision.platform
            or approval.conversation.workspace != decision.workspace
        ):
            # A foreign or forged id gets the same answer as an unknown one: it reveals nothing.
            log.warning("decision for unknown approval from %s", decision.user)
            return DecisionResult(outcome=DecisionOutcome.NOT_FOUND, message="This approval request no longer exists.")
        now = time.time()
        if approval.status is ApprovalStatus.PENDING and now > approval.expires_at:
            return await self._expire(approval, now)
        if approval.status is not ApprovalStatus.PENDING:
            return await self._already(approval)
        allowed, reason = self.gate.may_decide(decision.user, approval, decision.action)
        if not allowed:
            await self._audit("refused", approval, decision.user, f"{decision.action.value}: {reason}")
            return DecisionResult(outcome=DecisionOutcome.REFUSED, message=reason, approval=approval)
        changes: dict[str, Any] = {
            "decided_by": decision.user,
            "decided_by_name": decision.user_name,
            "decided_at": now,
        }
        target = ApprovalStatus.APPROVED if decision.action is DecisionAction.APPROVE else ApprovalStatus.CANCELLED
        if target is ApprovalStatus.APPROVED:
            # Intent first: the sweeper's index learns of the claim before the claim is made, so a claim whose
            # process dies (or whose store drops) right after it is still found and finished. An entry for a
            # claim that never happened is dropped by the sweeper, which reads the status.
            await self.approvals.mark_running(approval.id, now)
        stage.at = "claiming"
        won, current = await self.approvals.transition(approval.id, ApprovalStatus.PENDING, target, now, changes)
        if not won or current is None:
            if current is not None and current.status is ApprovalStatus.EXPIRED:
                return await self._after_expiry(current)
            return await self._already(current or approval)
        stage.at = "claimed"
        stage.approval = current
        live = show(current) if show is not None else None
        if target is ApprovalStatus.CANCELLED:
            await self._audit("cancelled", current, decision.user)
            return await self._announce(current, live=live)
        return await self._execute(current, stage, live=live)

    async def _execute(
        self, approval: Approval, stage: Stage, *, recovered: bool = False, live: LiveReply | None = None
    ) -> DecisionResult:
        if not recovered:
            await self._audit("approved", approval, approval.decided_by or "")
        extra: dict[str, Any] = {}
        changes: dict[str, Any] = {}  # what the run leaves on the approval, with its new status
        runnable = await runnable_call(self.registry.get(approval.tool), approval, self.gate)
        if isinstance(runnable, str):
            await self._audit("refused", approval, approval.decided_by or "", f"at execution: {runnable}")
            result_data: dict[str, Any] = {"ok": False, "error": runnable, "executed": False}
        else:
            # The stored, validated arguments run, never new ones from the model.
            spec, args = runnable
            doing = spec.doing_with(args) if live is not None else ""
            if live is not None:
                await live.progress(Progress(id=approval.id, title=doing))
            executed = await self.runner.execute(
                spec,
                args,
                approval.requested_by,
                approval.conversation,
                idempotency_key=approval.id,
                progress=steps_on(live, approval.id) if live is not None else None,
            )
            if not executed.settled:
                return await self._unknown(approval, executed.result.error or "")
            result_data = json.loads(executed.result.for_model())
            extra = {"documents": executed.result.documents}
            changes["sources"] = executed.result.sources
            if live is not None:
                state = ProgressState.DONE if executed.result.ok else ProgressState.FAILED
                detail = executed.result.summary or executed.result.error or ""
                await live.progress(Progress(id=approval.id, title=doing, state=state, detail=detail))
        stage.at = "ran"
        stage.result = result_data
        status = ApprovalStatus.DONE if result_data.get("ok") else ApprovalStatus.FAILED
        changes["result"] = result_data
        _, final = await self.approvals.transition(approval.id, ApprovalStatus.APPROVED, status, time.time(), changes)
        final = final or approval.model_copy(update={"status": status, **changes})
        # A click's outcome is settled here; the sweeper's once its card was updated (Dispatcher.sweep_expired).
        announced = await self._announce(final, settle=not recovered, live=live)
        return announced.model_copy(update=extra)

    async def _announce(
        self, approval: Approval, *, seen: bool = True, settle: bool = True, live: LiveReply | None = None
    ) -> DecisionResult:
        """Tell the conversation a final outcome (the model's follow-up), then settle the approval: until then
        the sweeper's index keeps it, so an outcome whose decider stopped before announcing it is announced
        later (the follow-up is written once: a second one finds its call already in the history)."""
        status = approval.status
        result = approval.result or {}
        if status in (ApprovalStatus.DONE, ApprovalStatus.FAILED):
            said = ran_words(result)
            outcome: dict[str, Any] = {**result, "approved_by": who(approval)}
        elif status is ApprovalStatus.CANCELLED:
            said = "Cancelled."
            outcome = {"ok": False, "status": "cancelled", "executed": False, "cancelled_by": who(approval)}
        else:
            said = "This request expired before anyone decided; nothing was done."
            outcome = {"ok": False, "status": "expired", "executed": False}
        # Not `seen`: an expired request whose card was never posted (the turn that asked was cut before
        # delivering it, and ran again with a new request). A follow-up about it would only confuse.
        answers = await self._continue(approval, outcome, said, live) if seen else []
        if settle:
            await self.settle(approval.id)
        return DecisionResult(outcome=_OUTCOMES[status], message=said, approval=approval, replies=answers)

    async def _unknown(self, approval: Approval, error: str) -> DecisionResult:
        """The tool timed out or raised after it started: its write may have committed. The approval stays
        `approved` and the sweeper runs it again under the same idempotency key (which returns what the first
        run did, if it did anything), later after each unknown outcome; it is never marked failed on a guess."""
        attempts = approval.attempts + 1
        retry_in = min(UNKNOWN_RETRY * 2 ** (attempts - 1), UNKNOWN_RETRY_CAP)
        log.warning("approval %s: outcome unknown (%s); retrying in %.0fs", approval.id, error, retry_in)
        await self.approvals.update_approval_fields(approval.id, {"attempts": attempts})
        await self.approvals.mark_running(approval.id, time.time() - self.stalled_after + retry_in)
        await self._audit("outcome_unknown", approval, approval.decided_by or "", error)
        return DecisionResult(
            outcome=DecisionOutcome.IN_PROGRESS,
            message="Approved; finishing it. The request did not confirm in time, so propbot will check and "
            "post the outcome in the conversation.",
            approval=approval.model_copy(update={"attempts": attempts}),
        )

    async def _expire(
        self, approval: Approval, now: float, *, seen: bool = True, settle: bool = True
    ) -> DecisionResult:
        won, current = await self.approvals.transition(
            approval.id, ApprovalStatus.PENDING, ApprovalStatus.EXPIRED, now, {"decided_at": now}
        )
        if not won or current is None:
            return await self._already(current or approval)
        return await self._after_expiry(current, seen=seen, settle=settle)

    async def _after_expiry(self, approval: Approval, *, seen: bool = True, settle: bool = True) -> DecisionResult:
        await self._audit("expired", approval, "")
        return await self._announce(approval, seen=seen, settle=settle)

    async def settle(self, approval_id: str) -> None:
        """The approval's outcome was announced (follow-up written, card updated): the sweeper lets it go. Best
        effort: an approval left unsettled is only announced once more (its follow-up is not written twice)."""
        if approval_id in self._not_continued:
            self._not_continued.discard(approval_id)
            return
        with contextlib.suppress(StoreUnavailable):
            await self.approvals.settle(approval_id)

    async def expire_due(self, announce_after: float | None = None) -> list[DecisionResult]:
        """Expire every pending approval past its time, and announce final outcomes whose decider stopped before
        announcing them (decided more than `announce_after` seconds ago). The sweeper calls this periodically
        and settles each result once its card is updated. A store failure ends the sweep early with what it
        has; the rest is found again next time."""
        now = time.time()
        results: list[DecisionResult] = []
        grace = self.stalled_after if announce_after is None else announce_after
        try:
            # One read of the index per sweep: each approval is looked at once, as it stood then.
            for approval in await self.approvals.unsettled_approvals():
                if approval.status is ApprovalStatus.PENDING:
                    if approval.expires_at < now:
                        result = await self._expire(approval, now, seen=bool(approval.card_ref), settle=False)
                        if result.outcome is DecisionOutcome.EXPIRED:
                            results.append(result)
                    continue
                if approval.status is ApprovalStatus.APPROVED:
                    continue  # running: recover_stalled's
                if (approval.decided_at or approval.created_at) > now - grace:
                    continue  # its decider may be announcing it right now
                if not await self.deliveries.first_delivery(f"approval-announce:{approval.id}", max(grace, 1.0)):
                    continue
                log.warning("announcing approval %s (%s): its decider stopped first", approval.id, approval.status)
                seen = approval.status is not ApprovalStatus.EXPIRED or bool(approval.card_ref)
                results.append(await self._announce(approval, seen=seen, settle=False))
        except StoreUnavailable:
            log.warning("approval sweep cut short: the state store is unavailable")
        return results

    async def recover_stalled(self, older_than: float | None = None) -> list[DecisionResult]:
        """Finish approvals whose process died between the claim and the tool's result, and those whose outcome
        was unknown (their retry is due).

        Running the tool again is safe: the approval id is its idempotency key, so a tool that did run
        returns what it did. A SET NX claim per attempt makes one process, not every sweeper, do each run."""
        window = self.stalled_after if older_than is None else older_than
        results: list[DecisionResult] = []
        try:
            for approval in await self.approvals.stalled_approvals(time.time() - window):
                key = f"approval-recovery:{approval.id}:{approval.attempts}"
                if not await self.deliveries.first_delivery(key, max(window, 1.0)):
                    continue
                log.warning("finishing approval %s: it was claimed but its outcome was never recorded", approval.id)
                results.append(await self._execute(approval, Stage("claimed", approval), recovered=True))
        except StoreUnavailable:
            log.warning("approval recovery cut short: the state store is unavailable")
        return results

    async def _continue(
        self, approval: Approval, outcome: dict[str, Any], said: str, live: LiveReply | None = None
    ) -> list[Reply]:
        """Tell the model what happened and let it answer, under the conversation's lock.

        The outcome goes in as a call/result pair for the approved tool: a shape every
        OpenAI-compatible server accepts mid-conversation, and the model reads it as a tool result.
        `said` is the outcome in plain words, for when the model cannot answer.
        """
        try:
            return await self._tell_model(approval, outcome, said, live)
        except StoreUnavailable:
            # The decision itself is recorded; only the follow-up could not be written. Say so plainly
            # rather than report the whole decision as failed.
            log.warning("approval %s decided, but its conversation could not be continued", approval.id)
            # Not settled, so the sweeper writes the follow-up later (its grace period from now on).
            self._not_continued.add(approval.id)
            return [TextReply(text=NOT_CONTINUED.format(outcome=said.rstrip(".") + "."), is_error=True)]

    async def _tell_model(
        self, approval: Approval, outcome: dict[str, Any], said: str, live: LiveReply | None
    ) -> list[Reply]:
        key = approval.conversation.key
        call_id = f"call_approval_{approval.id}"

        def told(history: list[dict[str, Any]]) -> bool:
            return any(m.get("tool_call_id") == call_id for m in history)

        opened = await self.transcript.open(key)
        if told(opened.history):
            # A recovery of an outcome the conversation already has (the first run's record was lost).
            return []
        opened.history.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": approval.tool, "arguments": json.dumps(approval.arguments)},
                    }
                ],
            }
        )
        opened.history.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps(outcome, default=str)})
        # No tools: the follow-up only reports the outcome. The newest message in a shared channel may be
        # someone else's, and acting on it with the requester's tools would do things nobody asked for.
        try:
            replies = await self.loop.run(
                approval.requested_by,
                approval.requested_by_name,
                approval.conversation,
                opened.history,
                may_act=False,
                model_errors=True,
                live=live,
            )
        except ModelError as exc:
            # The outcome stands and is kept in the history; only the model's words are missing.
            replies = [texts.outcome_without_model(said, exc)]
        for reply in replies:
            if isinstance(reply, TextReply) and not reply.tools:
                reply.tools.append(approval.tool)  # the follow-up is about the approved call
            if isinstance(reply, TextReply) and not reply.sources:
                reply.sources.extend(approval.sources)  # and names what it made or changed
        # After whatever the conversation said meanwhile; not at all if another run of this outcome got there.
        await self.transcript.append(key, opened, already=told)
        return replies

    async def _already(self, approval: Approval) -> DecisionResult:
        """Someone else decided first. A claim still running (`approved`) is waited for, briefly, so the
        losing click can show the final outcome rather than a card stuck at "approved"."""
        deadline = time.monotonic() + self.settle_wait
        pause = 0.05
        while approval.status is ApprovalStatus.APPROVED and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            approval = await self.approvals.get_approval(approval.id) or approval
        return already(approval)

    async def _audit(self, kind: str, approval: Approval, user: str, detail: str = "") -> None:
        metrics.APPROVALS.labels(kind).inc()
        spec = self.registry.get(approval.tool)
        arguments = spec.redact(approval.arguments) if spec else {}
        await self.audit.record(
            AuditEvent(
                kind=kind,
                user=user,
                conversation=approval.conversation.key,
                tool=approval.tool,
                arguments=arguments,
                outcome=kind,
                detail=detail,
                approval_id=approval.id,
            )
        )
