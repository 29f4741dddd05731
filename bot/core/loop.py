"""The tool loop: call the model until it answers in words, asks for an approval, or runs out of rounds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bot.core import texts
from bot.core.gate import Gate
from bot.core.history import Message, TokenCounter, prepare
from bot.core.next_steps import merge_sources, next_steps
from bot.core.port import LiveReply
from bot.core.tool_runner import CallOutcome, ToolRunner, TurnScope
from bot.errors import ModelError
from bot.llm import ChatModel
from bot.types import (
    ApprovalRequest,
    Conversation,
    Presentation,
    Progress,
    ProgressState,
    Reply,
    Source,
    TextReply,
)
from tools import Registry

DEFAULT_SYSTEM_PROMPT = """You are propbot, the assistant of a property management team, working inside \
their chat. You look up properties and maintenance requests and act on them with your tools.
- Use the tools for facts; never invent ids, addresses, prices or statuses.
- Scheduling or cancelling maintenance needs a person's approval. Call the tool when asked; the system \
asks for approval. Never claim it is done until a tool result says so.
- If a tool result reports an error, fix the arguments or explain the problem plainly.
- Several people may write in one channel; each message starts with when it was sent, in the writer's time \
zone ([Weekday YYYY-MM-DD HH:MM Area/City]), then the writer's name. Work out dates such as "tomorrow" \
from that date.
- Be brief. Use short Markdown lists. Always include ids."""


def cache_key_of(conversation: Conversation) -> str:
    """The provider's prompt-cache key for a conversation: a hash, so no workspace or channel id leaves propbot."""
    return hashlib.sha256(conversation.key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoopLimits:
    max_rounds: int  # model calls with tools per turn
    token_budget: int  # the prompt (system + history + tool schemas) is trimmed to this


class ToolLoop:
    def __init__(
        self,
        model: ChatModel,
        registry: Registry,
        gate: Gate,
        runner: ToolRunner,
        counter: TokenCounter,
        limits: LoopLimits,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.model = model
        self.registry = registry
        self.gate = gate
        self.runner = runner
        self.counter = counter
        self.limits = limits
        self.system: Message = {"role": "system", "content": system_prompt}

    async def run(
        self,
        user: str,
        user_name: str | None,
        conversation: Conversation,
        history: list[Message],
        *,
        may_act: bool = True,
        model_errors: bool = False,
        live: LiveReply | None = None,
    ) -> list[Reply]:
        """The replies for the user. `history` is extended in place and stays a valid request at every step.

        With `may_act=False` the model is offered no tools (it may only answer in words), and any call it
        makes anyway is answered unrun. A model failure is answered in words, or raised
        with `model_errors=True` for a caller that has more to say about it."""
        if may_act:
            await self.gate.refresh(user)
        allowed = self.gate.tools_for(user) if may_act else []
        scope = TurnScope(user, user_name, conversation, frozenset(allowed))
        schemas = self.registry.schemas(allowed)
        presentations: list[Presentation] = []
        used: list[str] = []  # tools that answered, in order, once each
        sources: list[Source] = []
        spoken = _Spoken(live)
        for _ in range(self.limits.max_rounds):
            prompt = prepare(history, self.system, self.limits.token_budget, self.counter, schemas)
            try:
                answer = await self.model.complete(
                    prompt, schemas, spoken.sink if live is not None else None, cache_key=cache_key_of(conversation)
                )
            except ModelError as exc:
                if model_errors:
                    raise
                return [texts.model_failed(exc)]
            if not answer.tool_calls and not isinstance(answer.message.get("content"), str):
                # A filtered or refused answer can come back with no content at all; stored like that it would
                # make every later request of this conversation invalid (400).
                answer.message["content"] = ""
            history.append(answer.message)
            spoken.end_round(answer.message.get("content"))
            if not answer.tool_calls:
                steps = next_steps(scope.allowed, sources)
                text = spoken.text or texts.NO_ANSWER
                return [
                    TextReply(text=text, presentations=presentations, tools=used, sources=sources, suggestions=steps)
                ]
            if not may_act:
                outcomes = _unrun(answer.tool_calls)
            else:
                titles = self._titles(answer.tool_calls) if live is not None else {}
                await _started(live, titles)
                outcomes = await self.runner.run_calls(scope, answer.tool_calls)
                await _finished(live, outcomes, titles)
            for outcome in outcomes:
                history.append({"role": "tool", "tool_call_id": outcome.tool_call_id, "content": outcome.content})
                if outcome.result is not None:
                    if outcome.name not in used:
                        used.append(outcome.name)
                    merge_sources(sources, outcome.result.sources)
                if outcome.result is not None and outcome.result.presentation is not None:
                    presentations.append(outcome.result.presentation)
            approvals = [o.approval for o in outcomes if o.approval is not None]
            if approvals:
                out: list[Reply] = []
                if spoken.text or presentations:
                    out.append(TextReply(text=spoken.text, presentations=presentations, tools=used, sources=sources))
                out.extend(ApprovalRequest(approval=a) for a in approvals)
                return out
        return [texts.out_of_rounds(self.limits.max_rounds, presentations)]

    def _titles(self, calls: list[dict[str, Any]]) -> dict[str, str]:
        """Each call's progress title (call id -> what it is doing), worked out once for its start and its end."""
        return {str(c.get("id")): _doing(self.registry, c) for c in calls}


# Between the texts of two model rounds of one turn ("Let me look." ... "Here it is."), as streamed and as replied.
ROUND_BREAK = "\n\n"


class _Spoken:
    """The text a turn's model rounds wrote, streamed to `live` as it comes: the reply's text is all of it."""

    def __init__(self, live: LiveReply | None) -> None:
        self.live = live
        self.parts: list[str] = []
        self._in_round = False

    async def sink(self, delta: str) -> None:
        assert self.live is not None
        if not self._in_round:
            self._in_round = True
            if self.parts:
                await self.live.text(ROUND_BREAK)
        await self.live.text(delta)

    def end_round(self, content: Any) -> None:
        self._in_round = False
        if isinstance(content, str) and content:
            self.parts.append(content)

    @property
    def text(self) -> str:
        return ROUND_BREAK.join(self.parts)


def _doing(registry: Registry, call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    spec = registry.get(str(function.get("name") or ""))
    if spec is None:
        return "Checking what to do…"
    return spec.doing(function.get("arguments"))


async def _started(live: LiveReply | None, titles: dict[str, str]) -> None:
    if live is None:
        return
    for call_id, title in titles.items():
        await live.progress(Progress(id=call_id, title=title))


async def _finished(live: LiveReply | None, outcomes: list[CallOutcome], titles: dict[str, str]) -> None:
    if live is None:
        return
    for outcome in outcomes:
        title = titles.get(outcome.tool_call_id, outcome.name)
        if outcome.approval is not None:
            step = Progress(
                id=outcome.tool_call_id,
                title="Waiting for approval",
                state=ProgressState.WAITING,
                detail=outcome.approval.title or title,
            )
        elif outcome.result is not None and outcome.result.ok:
            step = Progress(
                id=outcome.tool_call_id, title=title, state=ProgressState.DONE, detail=outcome.result.summary or ""
            )
        else:
            error = outcome.result.error if outcome.result is not None else _first_sentence(outcome.content)
            step = Progress(id=outcome.tool_call_id, title=title, state=ProgressState.FAILED, detail=error or "")
        await live.progress(step)


_UNRUN = json.dumps({"ok": False, "error": "No tools may be used in this reply; report the outcome in words."})


def _unrun(calls: list[dict[str, Any]]) -> list[CallOutcome]:
    """Answers for calls a model made where it was offered no tools. They are not run, and not audited as the
    user's refused calls: the user asked for none of them."""
    return [CallOutcome(str(c.get("id")), str((c.get("function") or {}).get("name") or ""), _UNRUN) for c in calls]


def _first_sentence(content: str) -> str:
    """The reason a call was not run, in its first sentence (the rest is advice for the model)."""
    try:
        error = str(json.loads(content).get("error") or "")
    except (ValueError, AttributeError):
        return ""
    return error.split(". ")[0].rstrip(".") + "." if error else ""
