"""A decision's steps on the Teams approval card itself: while an approved workflow runs, the card it was
approved on lists every step and its state, updated in place as each starts and finishes (Teams has no
streaming outside personal chats, and the card is where the approver is looking)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from bot.types import Approval, Progress, ProgressState, Reply

if TYPE_CHECKING:
    from adapters.teams.outbound import TeamsResponder

MARKS: Final = {ProgressState.RUNNING: "…", ProgressState.DONE: "✓", ProgressState.FAILED: "✗"}


class RunCard:
    """A LiveReply for a decision in Teams: only the steps of the approved call show (on its card); the
    follow-up is posted by the caller as usual."""

    def __init__(self, responder: TeamsResponder, approval: Approval, fallback_id: str | None) -> None:
        self.responder = responder
        self.approval = approval
        self.fallback_id = fallback_id
        self.steps: dict[str, Progress] = {}
        self.labels: dict[str, str] = {}  # "Step 2 of 4", from the step's start

    async def progress(self, step: Progress) -> None:
        if not step.id.startswith(self.approval.id + ":"):
            return  # the call as a whole: the card already says it was approved
        self.steps[step.id] = step
        if step.state is ProgressState.RUNNING and step.detail.startswith("Step "):
            self.labels[step.id] = step.detail
        await self.responder.replace_card(self.approval, self.fallback_id, [self.line(s) for s in self.steps.values()])

    def line(self, step: Progress) -> str:
        label = self.labels.get(step.id)
        said = f" ({step.detail})" if step.state is not ProgressState.RUNNING and step.detail else ""
        return f"{MARKS.get(step.state, '•')} {label + ': ' if label else ''}{step.title}{said}"

    async def text(self, delta: str) -> None:
        return None

    async def finish(self, replies: list[Reply]) -> None:
        return None

    async def resume(self) -> bool:
        return False
