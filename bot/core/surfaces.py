"""What the chat surfaces around a conversation ask of the core: suggested prompts for a person's role, their
home page (approvals they wait for or may decide, their last actions), feedback on answers, and requests made
from a form rather than in words (no model on that path; the usual approval guards it)."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from bot.core.gate import APPROVER, NOT_ADMITTED, Gate
from bot.core.permissions import same_person
from bot.core.tool_runner import ToolRunner, TurnScope
from bot.errors import StoreUnavailable
from bot.observability import metrics
from bot.observability.audit import AuditEvent, AuditSink
from bot.store.base import Approvals, Notes
from bot.types import (
    Approval,
    ApprovalRequest,
    ApprovalStatus,
    Caller,
    Conversation,
    Feedback,
    Reply,
    Suggestion,
    TeamNotice,
    TextReply,
)
from tools import Registry
from tools.maintenance_team import marks_from

log = logging.getLogger(__name__)


# (the tool it needs, title, message). Slack shows at most four.
SUGGESTIONS: Final = (
    ("search_properties", "Find a property", "Show available 2-bedroom properties in Austin under $2,500"),
    ("list_maintenance_requests", "Open maintenance", "List the open maintenance requests"),
    ("schedule_maintenance", "Schedule maintenance…", "Schedule a plumbing repair at P-1001, medium priority"),
    ("cancel_maintenance_request", "Cancel a request…", "Cancel maintenance request MR-5001"),
)
# How long an answer's tools are remembered for feedback on it.
ANSWER_NOTE_TTL: Final = 30 * 86400.0
PLACE_TTL: Final = 365 * 86400.0
TEAM_TOOL: Final = "update_maintenance_status"
REQUEST_TOOL: Final = "schedule_maintenance"  # what the request form asks for
CHOICES_TOOL: Final = "search_properties"  # what the form's property search answers from
NOT_OURS: Final = "That button is not one propbot made; nothing was changed."
ASK_WHAT: Final = Suggestion(title="What can you do?", message="What can you help me with?")

# Who did what recently, for the home page: the person's own actions (their calls, approvals, decisions).
RecentActions = Callable[[str, int], Awaitable[list[AuditEvent]]]
# Text typed into a search box -> matching (value, label) pairs, e.g. properties for a form's select.
Choices = Callable[[str], Awaitable[list[tuple[str, str]]]]


async def _no_recent(user: str, limit: int) -> list[AuditEvent]:
    return []


async def _no_choices(query: str) -> list[tuple[str, str]]:
    return []


@dataclass
class Home:
    """A person's home page: what waits on them and what they did."""

    mine: list[Approval] = field(default_factory=list)  # pending, asked by them
    to_decide: list[Approval] = field(default_factory=list)  # pending, theirs to approve
    recent: list[AuditEvent] = field(default_factory=list)
    may_request: bool = False  # may ask for maintenance from the form
    unavailable: bool = False  # the state store could not be read
    refused: bool = False  # the gate did not let this person in: nothing is shown


@dataclass
class Marked:
    """What came of a maintenance team's button: the notice as it now stands (None when nothing changed), and
    what to tell the clicker."""

    message: str
    notice: TeamNotice | None = None


class Surfaces:
    """Every method takes the `Caller` at the door and asks the gate first: a person it does not let in gets
    nothing shown and nothing changed."""

    def __init__(
        self,
        approvals: Approvals,
        gate: Gate,
        registry: Registry,
        runner: ToolRunner,
        audit: AuditSink,
        *,
        recent: RecentActions = _no_recent,
        choices: Choices = _no_choices,
        notes: Notes | None = None,
    ) -> None:
        self.approvals = approvals
        self.gate = gate
        self.registry = registry
        self.runner = runner
        self.audit = audit
        self.recent = recent
        self._choices = choices
        self.notes = notes

    async def mark(self, caller: Caller, request_id: str, status: str, where: Conversation) -> Marked:
        """A maintenance team's button on a notice: the request marked `status` when the clicker is let in, their
        role has update_maintenance_status, and the card clicked is that request's notice in this channel (a
        client can send any id); else a refusal in words."""
        person = await self.gate.admit(caller)
        if not person.admitted:
            return Marked(NOT_ADMITTED)
        spec = self.registry.get(TEAM_TOOL)
        if spec is None or not self.gate.may_use(person.principal, TEAM_TOOL):
            return Marked("You may not update maintenance requests; nothing was changed.")
        try:
            args = spec.args_model.model_validate({"request_id": request_id, "status": status})
        except ValidationError:
            return Marked(NOT_OURS)
        if not await self._noticed(where, request_id):
            return Marked(NOT_OURS)
        result = (await self.runner.execute(spec, args, person.principal, where)).result
        if not result.ok or result.presentation is None:
            return Marked(result.error or "Nothing was changed.")
        now = str((result.data or {}).get("status") or status)
        shown = result.presentation
        notice = TeamNotice(
            key=f"{request_id}:{now}",
            request_id=str((result.data or {}).get("id") or request_id),
            property_id=str((result.data or {}).get("property_id") or ""),
            city="",
            status=now,
            title=shown.title,
            fields=shown.fields,
            marks=marks_from(now),
        )
        return Marked(result.summary or "Updated.", notice)

    @staticmethod
    def notice_key(platform: str, channel: str, request_id: str) -> str:
        return f"notice:{platform}:{channel}:{request_id.upper()}"

    async def noticed(self, platform: str, channel: str, request_id: str) -> None:
        """Remember that a notice of this request was posted in this channel: its buttons act on it there."""
        if self.notes is not None:
            await self.notes.put_note(self.notice_key(platform, channel, request_id), "1", PLACE_TTL)

    async def _noticed(self, where: Conversation, request_id: str) -> bool:
        if self.notes is None:
            return False
        try:
            return await self.notes.get_note(self.notice_key(where.platform, where.channel, request_id)) is not None
        except StoreUnavailable:
            return False

    async def remember_place(self, key: str, reference: str) -> None:
        """Keep where propbot can post later (a Teams channel's conversation reference), for a year."""
        if self.notes is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.notes.put_note(f"place:{key}", reference, PLACE_TTL)

    async def place(self, key: str) -> str | None:
        if self.notes is None:
            return None
        try:
            return await self.notes.get_note(f"place:{key}")
        except StoreUnavailable:
            return None

    async def suggestions(self, caller: Caller) -> list[Suggestion]:
        """Prompts worth offering this person: only what their role lets them do; none for someone not let in."""
        person = await self.gate.admit(caller)
        if not person.admitted:
            return []
        allowed = set(self.gate.tools_for(person.principal))
        found = [Suggestion(title=title, message=message) for tool, title, message in SUGGESTIONS if tool in allowed]
        return found or [ASK_WHAT]

    async def home(self, caller: Caller, recent: int = 5) -> Home:
        person = await self.gate.admit(caller)
        if not person.admitted:
            return Home(refused=True)
        page = Home(may_request=self.gate.may_use(person.principal, REQUEST_TOOL))
        try:
            pending = await self.approvals.unsettled_approvals()
        except StoreUnavailable:
            return Home(may_request=page.may_request, unavailable=True)
        now = time.time()
        for approval in sorted(pending, key=lambda a: a.created_at):
            if approval.status is not ApprovalStatus.PENDING or approval.expires_at < now:
                continue
            view = self.gate.may_see_approval(person, approval)
            if view and same_person(person.principal, approval.requested_by):
                page.mine.append(approval)
            elif view == APPROVER:
                page.to_decide.append(approval)
        try:
            page.recent = await self.recent(person.principal, recent)
        except StoreUnavailable:
            page.recent = []
        return page

    async def viewer(self, approval_id: str, caller: Caller, channel: str) -> tuple[Approval | None, str]:
        """An approval as one person should see it from the conversation `channel`, and as whom: "approver" (may
        decide it), "requester" (may withdraw it) or "other" (only from its own conversation). None for an
        unknown or foreign id, for someone neither in its conversation nor its requester or approver, for someone
        the gate does not let in, or when the store cannot be read."""
        person = await self.gate.admit(caller)
        if not person.admitted:
            return None, ""
        try:
            approval = await self.approvals.get_approval(approval_id)
        except StoreUnavailable:
            return None, ""
        view = self.gate.may_see_approval(person, approval, channel) if approval is not None else ""
        return (approval, view) if view else (None, "")

    def approvers(self, approval: Approval) -> list[str]:
        """Who the permissions file names as able to decide this approval."""
        return self.gate.approvers(approval)

    async def answered(self, answer: str, tools: list[str], conversation: str) -> None:
        """Remember which tools an answer (by its platform id) used, for feedback that cannot carry them, and
        as the conversation's latest answer, for feedback that does not say which answer it is about (the Agents
        Playground sends no `replyToId`)."""
        if self.notes is not None and tools:
            used = ",".join(tools)
            with contextlib.suppress(StoreUnavailable):
                await self.notes.put_note(f"answer:{answer}", used, ANSWER_NOTE_TTL)
                await self.notes.put_note(f"answer:latest:{conversation}", used, ANSWER_NOTE_TTL)

    async def feedback(self, caller: Caller, feedback: Feedback) -> str:
        """Record a 👍/👎 on an answer: the audit trail and a counter by tool and way. Someone the gate does not
        let in records nothing."""
        person = await self.gate.admit(caller)
        if not person.admitted or not self.gate.may_see(person, feedback.conversation):
            return NOT_ADMITTED
        way = "good" if feedback.positive else "bad"
        named = list(feedback.tools)
        if not named and self.notes is not None:
            which = feedback.answer or f"latest:{feedback.conversation}"
            with contextlib.suppress(StoreUnavailable):
                named = (await self.notes.get_note(f"answer:{which}") or "").split(",")
        tools = [t for t in dict.fromkeys(named) if t and self.registry.get(t) is not None] or ["none"]
        for tool in tools:
            metrics.FEEDBACK.labels(tool, way).inc()
        await self.audit.record(
            AuditEvent(
                kind="feedback",
                user=person.principal,
                conversation=feedback.conversation,
                tool=",".join(tools),
                outcome=way,
                detail=feedback.comment[:500],
            )
        )
        return "Thanks, noted." if feedback.positive else "Thanks for telling us; noted so we can do better."

    async def form(self, caller: Caller) -> dict[str, list[str]] | None:
        """The request form's choices (issue types, priorities) for a person who may request maintenance; None
        for anyone else, who gets no form."""
        person = await self.gate.admit(caller)
        if not person.admitted or not self.gate.may_use(person.principal, REQUEST_TOOL):
            return None
        return {name: self.options(REQUEST_TOOL, name) for name in ("issue_type", "priority")}

    async def choices(self, caller: Caller, query: str) -> list[tuple[str, str]]:
        """What the form's property search answers this person: only what search_properties would."""
        person = await self.gate.admit(caller)
        if not person.admitted or not self.gate.may_use(person.principal, CHOICES_TOOL):
            return []
        return await self._choices(query)

    def options(self, tool: str, argument: str) -> list[str]:
        """The values an argument takes when its schema lists them (an enum), for a form's select."""
        spec = self.registry.get(tool)
        if spec is None:
            return []
        schema = spec.args_model.model_json_schema()
        prop = (schema.get("properties") or {}).get(argument) or {}
        for alternative in [prop, *prop.get("anyOf", [])]:
            ref = str(alternative.get("$ref") or "")
            target = (schema.get("$defs") or {}).get(ref.rsplit("/", 1)[-1], alternative) if ref else alternative
            if isinstance(target.get("enum"), list):
                return [str(v) for v in target["enum"]]
        return []

    def problems(self, tool: str, arguments: dict[str, Any]) -> dict[str, str]:
        """What is wrong with a form's arguments for `tool`, by argument name ("" for the whole); {} when fine."""
        spec = self.registry.get(tool)
        if spec is None:
            return {"": f"{tool} is not installed"}
        try:
            spec.args_model.model_validate(arguments)
        except ValidationError as exc:
            found: dict[str, str] = {}
            for error in exc.errors():
                where = str(error["loc"][0]) if error["loc"] else ""
                found.setdefault(where, str(error["msg"]).removeprefix("Value error, "))
            return found
        return {}

    async def request(
        self, caller: Caller, conversation: Conversation, tool: str, arguments: dict[str, Any]
    ) -> list[Reply]:
        """A tool call asked for from a form: checked and validated like the model's, held for approval when
        the tool is risky. The replies say what happened (an approval request, or why not)."""
        person = await self.gate.admit(caller)
        if not person.admitted or not self.gate.may_see(person, conversation.key):
            return [TextReply(text=f"Nothing was requested: {NOT_ADMITTED}", is_error=True)]
        user = person.principal
        scope = TurnScope(user, person.name, conversation, frozenset(self.gate.tools_for(user)))
        call = {
            "id": f"call_form_{secrets.token_hex(6)}",
            "type": "function",
            "function": {"name": tool, "arguments": json.dumps(arguments)},
        }
        [outcome] = await self.runner.run_calls(scope, [call])
        if outcome.approval is not None:
            return [ApprovalRequest(approval=outcome.approval)]
        if outcome.result is not None and outcome.result.ok:
            return [TextReply(text=outcome.result.summary or "Done.", tools=[tool])]
        error = json.loads(outcome.content).get("error") or "the request could not be made"
        return [TextReply(text=f"Nothing was requested: {error}", is_error=True)]
