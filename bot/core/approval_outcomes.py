"""What a decision tells the clicker, in plain words that say only what is known to have happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.types import Approval, ApprovalStatus, Decision, DecisionAction, DecisionOutcome, DecisionResult

NOT_CONTINUED = "{outcome} I could not add that to this conversation right now (propbot's state store is unavailable)."


@dataclass
class Stage:
    """How far a decision got, so a store failure is reported truthfully."""

    at: str = "before"  # before the claim | claiming (sent, outcome unknown) | claimed | ran (tool finished)
    approval: Approval | None = None
    result: dict[str, Any] | None = None


def store_failed(decision: Decision, stage: Stage) -> DecisionResult:
    cancel = decision.action is DecisionAction.CANCEL
    if stage.at == "before":
        outcome, message = DecisionOutcome.UNAVAILABLE, "nothing was changed. Try again shortly."
    elif stage.at == "claiming":
        what = "cancel" if cancel else "approval"
        outcome = DecisionOutcome.UNAVAILABLE
        message = (
            f"I could not confirm your {what}. If it was recorded, propbot finishes it once the store is back "
            "and posts the outcome in the conversation; click again later to see where it stands."
        )
    elif stage.at == "claimed":
        outcome = DecisionOutcome.CANCELLED if cancel else DecisionOutcome.IN_PROGRESS
        message = "Cancelled." if cancel else "Approved; finishing it. propbot posts the outcome in the conversation."
    else:
        outcome = DecisionOutcome.IN_PROGRESS
        message = ran_words(stage.result or {}).rstrip(".") + ". propbot will record it once its store is back."
    if outcome is DecisionOutcome.UNAVAILABLE:
        message = "propbot cannot reach its state store right now; " + message
    return DecisionResult(outcome=outcome, message=message, approval=stage.approval)


def ran_words(result: dict[str, Any]) -> str:
    """What an approved call did, in the words the clicker and the conversation are given."""
    if result.get("ok"):
        summary = result.get("summary")
        return f"Approved and done: {summary}" if summary else "Approved and done."
    return f"Approved, but it failed: {result.get('error')}"


def who(approval: Approval) -> str:
    return approval.decided_by_name or approval.decided_by or "someone"


def already(approval: Approval) -> DecisionResult:
    status = approval.status
    outcome = DecisionOutcome.EXPIRED if status is ApprovalStatus.EXPIRED else DecisionOutcome.ALREADY_DECIDED
    by = f" by {who(approval)}" if approval.decided_by else ""
    summary = (approval.result or {}).get("summary")
    what = f" ({summary})" if status is ApprovalStatus.DONE and summary else ""
    return DecisionResult(
        outcome=outcome,
        message=f"This request was already {status.value}{by}{what}; nothing more was done.",
        approval=approval,
    )
