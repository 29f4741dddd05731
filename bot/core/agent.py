"""The agent core: one turn = de-duplicate, lock the conversation, run the tool loop, save, unlock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.core import texts as replies
from bot.core.approvals import ApprovalDesk
from bot.core.history import Message, TokenCounter, prepare, sanitize, trim
from bot.core.permissions import Permissions
from bot.core.rate_limit import RateLimiter
from bot.core.tool_runner import CallOutcome, ToolRunner, TurnScope
from bot.errors import Busy, ModelError, StoreUnavailable
from bot.llm.openai_model import LLMClient
from bot.observability import metrics, tracing
from bot.observability.audit import AuditSink, LogAudit
from bot.observability.logs import log_context
from bot.store import Store
from bot.types import (
    ApprovalRequest,
    Conversation,
    Decision,
    DecisionResult,
    Incoming,
    Presentation,
    Reply,
    TextReply,
)
from tools.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = """You are propbot, the assistant of a property management team, working inside \
their chat. You look up properties and maintenance requests and act on them with your tools.
- Use the tools for facts; never invent ids, addresses, prices or statuses.
- Scheduling or cancelling maintenance needs a person's approval. Call the tool when asked; the system \
asks for approval. Never claim it is done until a tool result says so.
- If a tool result reports an error, fix the arguments or explain the problem plainly.
- Several people may write in one channel; messages start with the writer's name.
- Be brief. Use short Markdown lists. Always include ids."""


@dataclass
class LoopResult:
    replies: list[Reply]


class Agent:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        llm: LLMClient,
        registry: Registry,
        permissions: Permissions,
        db: Any,
        audit: AuditSink | None = None,
        cache: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self.registry = registry
        self.permissions = permissions
        self.db = db
        self.audit: AuditSink = audit or LogAudit()
        self.counter = TokenCounter(settings.tokenizer_encoding)
        self.system: Message = {"role": "system", "content": settings.system_prompt or DEFAULT_SYSTEM_PROMPT}
        self.tools = ToolRunner(
            registry,
            permissions,
            store,
            db,
            self.audit,
            approval_ttl=settings.approval_ttl,
            max_parallel=settings.max_parallel_tools,
            cache=cache,
        )
        self.desk = ApprovalDesk(self)
        self.limiter = RateLimiter(store, settings, self.audit)

    async def decide(self, decision: Decision) -> DecisionResult:
        """A button click: see bot.core.approvals."""
        return await self.desk.decide(decision)

    async def expire_due(self) -> list[DecisionResult]:
        return await self.desk.expire_due()

    async def recover_stalled(self, older_than: float = 300.0) -> list[DecisionResult]:
        """Finish approved tool runs a dead process left behind (see bot.core.approvals)."""
        return await self.desk.recover_stalled(older_than)

    async def attach_card(self, approval_id: str, card_ref: dict[str, Any]) -> None:
        """Remember where the adapter posted an approval's card, so any process can replace it later."""
        await self.store.update_approval_fields(approval_id, {"card_ref": card_ref})

    # -- one user message ------------------------------------------------------------------------
    async def handle(self, msg: Incoming) -> list[Reply]:
        """Answer one message. Redeliveries return []; failures come back as plain-words replies."""
        try:
            if not await self.accept(msg):
                return []
        except StoreUnavailable:
            metrics.TURNS.labels(msg.conversation.platform, "unavailable").inc()
            return [replies.unavailable()]
        return await self.run_turn(msg)

    async def accept(self, msg: Incoming) -> bool:
        """False for a redelivery of a message already accepted. Raises StoreUnavailable."""
        with log_context(msg.conversation.key, msg.event_id):
            if await self.store.first_delivery(msg.event_id, self.settings.dedupe_ttl):
                return True
            metrics.DUPLICATES.labels(msg.conversation.platform).inc()
            log.info("dropped duplicate delivery %s", msg.event_id)
            return False

    async def run_turn(self, msg: Incoming) -> list[Reply]:
        """The turn for an accepted message: lock, load, loop, save, unlock."""
        conversation = msg.conversation
        with (
            log_context(conversation.key, msg.event_id),
            tracing.span("propbot.turn", platform=conversation.platform, user=tracing.user_hash(msg.user)),
        ):
            started = time.perf_counter()
            out = await self._turn(msg)
            log.info("turn finished in %.2fs with %d reply(ies)", time.perf_counter() - started, len(out))
            return out

    async def _turn(self, msg: Incoming) -> list[Reply]:
        platform = msg.conversation.platform
        text, cut = replies.bound_input(msg.text, self.settings.max_message_chars)
        try:
            # Before the lock: a refused message must not queue behind, or delay, the others.
            if (refusal := await self.limiter.refuse(msg)) is not None:
                return [refusal]
            async with self.locked_history(msg.conversation.key) as (token, history):
                content = f"{msg.user_name}: {text}" if msg.user_name else text
                history.append({"role": "user", "content": content})
                result = await self.run_loop(msg.user, msg.user_name, msg.conversation, history)
                await self.save(msg.conversation.key, history, token)
        except Busy:
            metrics.TURNS.labels(platform, "busy").inc()
            await self.forget(msg.event_id)
            return [replies.busy()]
        except StoreUnavailable:
            # Let the platform's redelivery (or the user) try again once the store is back.
            metrics.TURNS.labels(platform, "unavailable").inc()
            await self.forget(msg.event_id)
            return [replies.unavailable()]
        failed = any(isinstance(r, TextReply) and r.is_error for r in result.replies)
        metrics.TURNS.labels(platform, "error" if failed else "ok").inc()
        if cut:
            result.replies.insert(0, TextReply(text=replies.input_cut_notice(self.settings.max_message_chars)))
        return result.replies

    async def forget(self, event_id: str) -> None:
        """Undo `accept` (best effort), so the platform's redelivery of this message is accepted later."""
        with contextlib.suppress(StoreUnavailable):
            await self.store.forget_delivery(event_id)

    async def save(self, conversation: str, history: list[Message], token: str | None) -> None:
        kept = trim(sanitize(history), self.settings.history_token_budget, self.counter)
        await self.store.save_history(conversation, kept, release_token=token)

    @contextlib.asynccontextmanager
    async def locked_history(self, conversation: str) -> AsyncIterator[tuple[str, list[Message]]]:
        """Hold the conversation's lock (one turn at a time, across processes, its TTL refreshed) and
        yield (lock token, history), read in the same round trip as the lock was taken."""
        deadline = time.monotonic() + self.settings.lock_wait
        pause = 0.02
        while True:
            token, history = await self.store.lock_and_load(conversation, self.settings.lock_ttl)
            if token is not None:
                break
            if time.monotonic() >= deadline:
                raise Busy(conversation)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        keeper = asyncio.create_task(self._keep_lock(conversation, token))
        released = False
        try:
            yield token, history
            released = True  # save(..., token) released it in the same round trip as the write
        finally:
            keeper.cancel()
            if not released:
                with contextlib.suppress(StoreUnavailable):
                    await self.store.release_lock(conversation, token)

    async def _keep_lock(self, conversation: str, token: str) -> None:
        ttl = self.settings.lock_ttl
        with contextlib.suppress(StoreUnavailable):
            while True:
                await asyncio.sleep(ttl / 3)
                if not await self.store.extend_lock(conversation, token, ttl):
                    log.warning("lost the lock of %s during a long turn", conversation)
                    return

    # -- the tool loop ---------------------------------------------------------------------------
    async def run_loop(
        self,
        user: str,
        user_name: str | None,
        conversation: Conversation,
        history: list[Message],
        *,
        may_act: bool = True,
    ) -> LoopResult:
        """Call the model until it answers in text, asks for an approval, or runs out of rounds.

        `history` is extended in place; it stays a valid request at every step. With `may_act=False` the model
        is offered no tools (it may only answer in words), and any call it makes anyway is answered unrun.
        """
        allowed = self.permissions.allowed_tools(user, self.registry.names()) if may_act else []
        scope = TurnScope(user, user_name, conversation, frozenset(allowed))
        schemas = self.registry.schemas(allowed)
        presentations: list[Presentation] = []
        for _ in range(self.settings.max_tool_rounds):
            prompt = prepare(history, self.system, self.settings.history_token_budget, self.counter, schemas)
            try:
                answer = await self.llm.complete(prompt, schemas)
            except ModelError as exc:
                return LoopResult([replies.model_failed(exc)])
            history.append(answer.message)
            if not answer.tool_calls:
                text = answer.message.get("content") or "(no answer)"
                return LoopResult([TextReply(text=text, presentations=presentations)])
            outcomes = await self.tools.run_calls(scope, answer.tool_calls) if may_act else _unrun(answer.tool_calls)
            for outcome in outcomes:
                history.append({"role": "tool", "tool_call_id": outcome.tool_call_id, "content": outcome.content})
                if outcome.result is not None and outcome.result.presentation is not None:
                    presentations.append(outcome.result.presentation)
            approvals = [o.approval for o in outcomes if o.approval is not None]
            if approvals:
                out: list[Reply] = []
                if answer.message.get("content") or presentations:
                    out.append(TextReply(text=answer.message.get("content") or "", presentations=presentations))
                out.extend(ApprovalRequest(approval=a) for a in approvals)
                return LoopResult(out)
        return LoopResult([replies.out_of_rounds(self.settings.max_tool_rounds, presentations)])


_UNRUN = json.dumps({"ok": False, "error": "No tools may be used in this reply; report the outcome in words."})


def _unrun(calls: list[dict[str, Any]]) -> list[CallOutcome]:
    """Answers for calls a model made where it was offered no tools. They are not run, and not audited as the
    user's refused calls: the user asked for none of them."""
    return [CallOutcome(str(c.get("id")), str((c.get("function") or {}).get("name") or ""), _UNRUN) for c in calls]
