"""Platform-neutral messages exchanged between the adapters and the agent core.

Adapters translate Slack / Teams payloads into these types and render the replies back; the core
never sees a platform payload and never imports a platform SDK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.presentation import Detail, DocumentLink, Presentation, PresentationItem, Source, TeamNotice

__all__ = [
    "Approval",
    "ApprovalRequest",
    "ApprovalStatus",
    "AuditEvent",
    "Caller",
    "Conversation",
    "Decision",
    "DecisionAction",
    "DecisionOutcome",
    "DecisionResult",
    "Detail",
    "DocumentLink",
    "Feedback",
    "Incoming",
    "Membership",
    "Platform",
    "Presentation",
    "PresentationItem",
    "Progress",
    "ProgressState",
    "Reply",
    "Source",
    "Suggestion",
    "TeamNotice",
    "TextReply",
    "same_person",
]

Platform = Literal["slack", "teams", "console"]


class Conversation(BaseModel):
    """Where a message came from and where replies go.

    `channel` is the channel / DM / Teams conversation id *without* any thread part, so one channel
    has one history; `thread` is where replies are posted (Slack thread_ts, Teams reply-to id).
    """

    model_config = ConfigDict(frozen=True)

    platform: Platform
    workspace: str
    channel: str
    thread: str | None = None
    # Opaque platform data the adapter needs to reply later from any process (e.g. a Teams
    # conversation reference). The core stores and returns it untouched.
    reference: dict[str, Any] = Field(default_factory=dict)
    # The thread is a conversation of its own, with its own history (an AI assistant panel thread), rather
    # than a place in the channel's one conversation.
    thread_history: bool = False

    @property
    def key(self) -> str:
        base = f"{self.platform}:{self.workspace}:{self.channel}"
        return f"{base}:{self.thread}" if self.thread_history and self.thread else base


class AuditEvent(BaseModel):
    kind: str  # tool_call | refused | approval_requested | approved | cancelled | expired | rate_limited
    user: str
    conversation: str
    tool: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)  # already redacted by the tool's spec
    outcome: str = ""
    duration: float = 0.0
    detail: str = ""
    # What the tool did, in its own identifiers: "request_id=MR-12 status=scheduled" (see result_summary).
    result: str = ""
    approval_id: str | None = None
    at: float = Field(default_factory=time.time)


class Caller(BaseModel):
    """Who is at a door, as the adapter read the payload: the platform, the installation or tenant the payload
    arrived through (`workspace`), and the person as `platform:<their own team or tenant>:<user id>`. Only the
    core's gate decides what follows from it."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    workspace: str
    user: str
    name: str | None = None


class Incoming(BaseModel):
    """One user message, already verified and normalised by an adapter."""

    model_config = ConfigDict(frozen=True)

    conversation: Conversation
    user: str  # principal as written in the permissions file, e.g. "slack:T1:U1", "teams:<aad id>"
    text: str
    event_id: str  # the platform's delivery id, used to drop redeliveries
    user_name: str | None = None
    # When the person sent it (the platform's timestamp where it gives one, else when it arrived), and their time
    # zone as the platform says it (an IANA name; None: UTC): the model is told the date and time from these.
    received_at: float = Field(default_factory=time.time)
    timezone: str | None = None


class Suggestion(BaseModel):
    """A next step offered as a button: `message` is sent as if the person had written it."""

    model_config = ConfigDict(frozen=True)

    title: str
    message: str


class TextReply(BaseModel):
    kind: Literal["text"] = "text"
    text: str
    presentations: list[Presentation] = Field(default_factory=list)
    # True when the text explains a failure (model down, rate limited, ...); adapters may style it.
    is_error: bool = False
    # The tools whose results this answer rests on (feedback on it is counted by tool).
    tools: list[str] = Field(default_factory=list)
    # The records those results showed (cited where the platform cites), and next steps the person may take.
    sources: list[Source] = Field(default_factory=list)
    suggestions: list[Suggestion] = Field(default_factory=list)


class ProgressState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    WAITING = "waiting"  # held for a person's approval


class Progress(BaseModel):
    """One step of a turn as the user should see it while it runs ("Searching properties in Austin…"): a tool
    call, keyed by its call id, in the tool's own words."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    state: ProgressState = ProgressState.RUNNING
    detail: str = ""  # the outcome in a few words once known (a tool's summary or error, what awaits approval)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Membership:
    """What a platform's directory says a person belongs to, for the permissions file's `groups:` entries: group
    entries ("slack:T1:usergroup:S1", "teams:<tenant>:group:<id>") and their verified e-mail address."""

    groups: frozenset[str] = frozenset()
    email: str | None = None


class Approval(BaseModel):
    """A risky tool call waiting for (or past) a human decision. Stored by the core."""

    id: str
    conversation: Conversation
    requested_by: str
    requested_by_name: str | None = None
    tool: str
    tool_call_id: str
    arguments: dict[str, Any]
    summary: list[Detail] = Field(default_factory=list)
    title: str = ""
    created_at: float
    expires_at: float
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    decided_by_name: str | None = None
    decided_at: float | None = None
    result: dict[str, Any] | None = None
    # The records the approved call made or changed (the MR-… it scheduled): cited in its follow-up as answers are.
    sources: list[Source] = Field(default_factory=list)
    # Where the adapter posted the card (Slack channel + ts, Teams activity id), so any process can
    # replace it later, e.g. when it expires.
    card_ref: dict[str, Any] = Field(default_factory=dict)
    # Runs of an approved call whose outcome stayed unknown (the tool timed out or raised after it started);
    # the sweeper runs it again under the same idempotency key, later each time.
    attempts: int = 0
    # The tool as it was when the call was requested: a deploy that changes its arguments in between makes the
    # approval refuse to run (None: requested before versions were recorded; its arguments are checked instead).
    tool_version: int | None = None
    schema_hash: str | None = None


class ApprovalRequest(BaseModel):
    kind: Literal["approval"] = "approval"
    approval: Approval


Reply = TextReply | ApprovalRequest


class DecisionAction(StrEnum):
    APPROVE = "approve"
    CANCEL = "cancel"


class Decision(BaseModel):
    """A button click, normalised."""

    model_config = ConfigDict(frozen=True)

    approval_id: str
    user: str
    action: DecisionAction
    platform: Platform
    workspace: str
    user_name: str | None = None
    # The conversation the click came from (a channel or chat id), when the adapter knows it: someone outside the
    # approval's conversation who may not decide it learns nothing of it.
    channel: str | None = None


class Feedback(BaseModel):
    """A 👍/👎 on one of propbot's answers."""

    model_config = ConfigDict(frozen=True)

    user: str
    conversation: str  # Conversation.key where the answer was
    positive: bool
    tools: list[str] = Field(default_factory=list)  # the tools the answer rested on, as the adapter was told
    comment: str = ""
    # The answer's platform id, when the adapter could not carry its tools (looked up from `Surfaces.answered`).
    answer: str = ""


class DecisionOutcome(StrEnum):
    DONE = "done"  # approved and the tool ran
    # Approved, and the call is (or will be) run, but its result is not known or not recorded yet: the sweeper
    # finishes it and posts the outcome in the conversation.
    IN_PROGRESS = "in_progress"
    FAILED = "failed"  # approved but the tool failed
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUSED = "refused"  # the clicker may not decide this approval; nothing changed
    ALREADY_DECIDED = "already_decided"  # someone else got there first; nothing changed
    NOT_FOUND = "not_found"  # unknown, tampered or foreign approval id; nothing changed
    UNAVAILABLE = "unavailable"  # the state store could not be reached; nothing changed


class DecisionResult(BaseModel):
    outcome: DecisionOutcome
    message: str  # plain words for the clicker
    approval: Approval | None = None
    replies: list[Reply] = Field(default_factory=list)  # the agent's follow-up in the conversation
    documents: list[DocumentLink] = Field(default_factory=list)  # what the approved call made, to deliver

    @property
    def changed(self) -> bool:
        return self.outcome in (
            DecisionOutcome.DONE,
            DecisionOutcome.IN_PROGRESS,
            DecisionOutcome.FAILED,
            DecisionOutcome.CANCELLED,
            DecisionOutcome.EXPIRED,
        )


def same_person(a: str, b: str) -> bool:
    """Whether two principals are one person: same platform and user id, whatever team or tenant part they
    carry. Slack user ids and Teams AAD object ids are unique on their own, and a person's team can be
    written two ways (a Grid org id in clicks, a workspace id in events), which must not make them two."""
    return a.split(":", 1)[0] == b.split(":", 1)[0] and a.rsplit(":", 1)[-1] == b.rsplit(":", 1)[-1]
