"""Running the model's tool calls: look up, check permission, validate, then run or hold for approval.

Nothing the model sends is trusted: an unknown name, a refused tool, broken JSON or arguments that
fail validation become a tool result explaining the problem, so the model can correct itself, and
the tool does not run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel

from bot.core.gate import Gate, Person
from bot.core.tool_cache import ToolCache
from bot.errors import StoreUnavailable
from bot.observability import metrics, tracing
from bot.observability.audit import AuditEvent, AuditSink, result_summary
from bot.store.base import Approvals
from bot.types import Approval, Conversation
from tools.db import Database
from tools.registry import Registry, StepSink, ToolArgumentError, ToolContext, ToolResult, ToolSpec

log = logging.getLogger(__name__)


@dataclass
class CallOutcome:
    tool_call_id: str
    name: str
    content: str  # the `tool` message content the model sees
    result: ToolResult | None = None
    approval: Approval | None = None


class Executed(NamedTuple):
    result: ToolResult
    outcome: str  # ok, error, cached, timeout, exception

    @property
    def settled(self) -> bool:
        """The tool answered, so its result is what happened. After a timeout or an exception a write may have
        committed or not: only running it again under the same idempotency key tells."""
        return self.outcome not in ("timeout", "exception")


@dataclass
class TurnScope:
    """Who is acting, where: everything a tool call needs besides its arguments."""

    user: str
    user_name: str | None
    conversation: Conversation
    allowed: frozenset[str]


def _error(message: str, **extra: Any) -> str:
    return json.dumps({"ok": False, "error": message, **extra}, separators=(",", ":"))


class ToolRunner:
    def __init__(
        self,
        registry: Registry,
        gate: Gate,
        approvals: Approvals,
        db: Database,
        audit: AuditSink,
        *,
        approval_ttl: float,
        max_parallel: int,
        cache: ToolCache | None = None,
        tool_slots: int = 15,
        services: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry
        self.gate = gate
        self.approvals = approvals
        self.db = db
        self.audit = audit
        self.approval_ttl = approval_ttl
        self.max_parallel = max_parallel
        self.cache = cache
        self.services = services or {}  # ToolContext.extras: what the composition root gives tools to use
        # One running tool per database connection: a tool waits for its slot here, before its timeout starts,
        # so a busy pool delays a tool instead of timing it out mid-write (an unknown outcome for a risky one).
        self._slots = asyncio.Semaphore(tool_slots)

    async def run_calls(self, scope: TurnScope, calls: Sequence[dict[str, Any]]) -> list[CallOutcome]:
        """Run one answer's calls concurrently (bounded); outcomes come back in call order."""
        gate = asyncio.Semaphore(self.max_parallel)

        async def one(call: dict[str, Any]) -> CallOutcome:
            async with gate:
                return await self.run_call(scope, call)

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def run_call(self, scope: TurnScope, call: dict[str, Any]) -> CallOutcome:
        call_id = str(call.get("id"))
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        allowed = ", ".join(sorted(scope.allowed)) or "none"
        spec = self.registry.get(name)
        if spec is None:
            return CallOutcome(call_id, name, _error(f"Unknown tool {name!r}.", allowed_tools=allowed))
        if name not in scope.allowed or not self.gate.may_use(scope.user, name):
            metrics.TOOL_CALLS.labels(name, "refused").inc()
            await self._audit(scope, spec, {}, "refused", 0.0, "not permitted for this user")
            return CallOutcome(
                call_id,
                name,
                _error(
                    f"The user is not permitted to use {name}. Do not retry it; tell the user an "
                    "administrator can grant access.",
                    allowed_tools=allowed,
                ),
            )
        try:
            args = spec.parse_arguments(function.get("arguments"))
        except ToolArgumentError as exc:
            return CallOutcome(
                call_id, name, _error(f"{exc}. Fix the arguments and call {name} again.", allowed_tools=allowed)
            )
        if spec.risky:
            approval = await self._request_approval(scope, spec, call_id, args)
            content = json.dumps(
                {
                    "ok": False,
                    "status": "pending_approval",
                    "approval_id": approval.id,
                    "note": "Not executed yet: a person must approve it first. Tell the user it is waiting "
                    "for approval; do not call it again.",
                },
                separators=(",", ":"),
            )
            return CallOutcome(call_id, name, content, approval=approval)
        result = (await self.execute(spec, args, scope.user, scope.conversation)).result
        return CallOutcome(call_id, name, result.for_model(), result=result)

    async def execute(
        self,
        spec: ToolSpec,
        args: BaseModel,
        user: str,
        conversation: Conversation,
        *,
        idempotency_key: str | None = None,
        progress: StepSink | None = None,
    ) -> Executed:
        with tracing.span("propbot.tool_call", tool=spec.name, conversation=conversation.key) as span:
            result, outcome = await self._execute(spec, args, user, conversation, idempotency_key, progress)
            span.set(outcome=outcome)
            return Executed(result, outcome)

    async def _execute(
        self,
        spec: ToolSpec,
        args: BaseModel,
        user: str,
        conversation: Conversation,
        idempotency_key: str | None,
        progress: StepSink | None = None,
    ) -> tuple[ToolResult, str]:
        asker = Person(user, conversation.platform, conversation.workspace, admitted=True)
        ctx = ToolContext(
            db=self.db,
            user=user,
            conversation_key=conversation.key,
            idempotency_key=idempotency_key,
            extras=self.services,
            progress=progress,
            sees=lambda key: self.gate.may_see(asker, key),
            recheck=self.recheck,
        )
        started = time.perf_counter()
        cached = await self.cache.get(spec, args) if self.cache is not None and spec.cache_ttl else None
        if cached is not None:
            result: ToolResult = cached
            outcome = "cached"
        else:
            try:
                async with self._slots:
                    raw = await asyncio.wait_for(spec.func(args, ctx), spec.timeout)
                result = raw if isinstance(raw, ToolResult) else ToolResult(data=raw)
                outcome = "ok" if result.ok else "error"
            except TimeoutError:
                result = ToolResult.failure(f"{spec.name} took longer than {spec.timeout:.0f}s and was stopped.")
                outcome = "timeout"
            except Exception:
                log.exception("tool %s failed", spec.name)
                result = ToolResult.failure(f"{spec.name} failed because of an internal error.")
                outcome = "exception"
            if self.cache is not None:
                await self.cache.after_call(spec, args, result)
        duration = time.perf_counter() - started
        metrics.TOOL_CALLS.labels(spec.name, outcome).inc()
        metrics.TOOL_LATENCY.labels(spec.name).observe(duration)
        arguments = args.model_dump(mode="json")
        await self.audit.record(
            AuditEvent(
                kind="tool_call",
                user=user,
                conversation=conversation.key,
                tool=spec.name,
                arguments=spec.redact(arguments),
                outcome=outcome,
                duration=duration,
                detail=result.error or "",
                result=result_summary(result.data, spec.sensitive),
                approval_id=idempotency_key,
            )
        )
        return result, outcome

    async def recheck(self, approval_id: str) -> str | None:
        """Why the approved call `approval_id` may no longer run (for a tool that resumes it, e.g. a workflow run
        retried): its requester and approver as the permissions are now, like the approved path itself."""
        try:
            approval = await self.approvals.get_approval(approval_id)
        except StoreUnavailable:
            return "propbot cannot read its approvals right now; nothing was done. Try again in a minute."
        if approval is None:
            return (
                "The approval behind this is no longer on record (approvals are kept a week after they close); "
                "nothing was done. Please ask for it again."
            )
        return await self.gate.no_longer_allowed(approval)

    async def _request_approval(self, scope: TurnScope, spec: ToolSpec, call_id: str, args: BaseModel) -> Approval:
        ctx = ToolContext(db=self.db, user=scope.user, conversation_key=scope.conversation.key)
        try:
            title, details = await spec.summarise(args, ctx)
        except Exception:
            log.exception("describing %s for approval failed", spec.name)
            title, details = spec.default_summary(args)
        now = time.time()
        approval = Approval(
            # 128 random bits: the id is the only thing a button carries, so it must not be guessable.
            id=secrets.token_urlsafe(16),
            conversation=scope.conversation,
            requested_by=scope.user,
            requested_by_name=scope.user_name,
            tool=spec.name,
            tool_call_id=call_id,
            arguments=args.model_dump(mode="json"),
            title=title,
            summary=details,
            created_at=now,
            expires_at=now + self.approval_ttl,
            tool_version=spec.version,
            schema_hash=spec.schema_hash,
        )
        # Kept well past expiry so a late click still finds it and says "expired", not "unknown".
        await self.approvals.create_approval(approval, keep_for=self.approval_ttl + 7 * 86400)
        metrics.APPROVALS.labels("requested").inc()
        await self._audit(scope, spec, spec.redact(approval.arguments), "approval_requested", 0.0, "", approval.id)
        return approval

    async def _audit(
        self,
        scope: TurnScope,
        spec: ToolSpec,
        arguments: dict[str, Any],
        kind: str,
        duration: float,
        detail: str,
        approval_id: str | None = None,
    ) -> None:
        await self.audit.record(
            AuditEvent(
                kind=kind,
                user=scope.user,
                conversation=scope.conversation.key,
                tool=spec.name,
                arguments=arguments,
                outcome=kind,
                duration=duration,
                detail=detail,
                approval_id=approval_id,
            )
        )
