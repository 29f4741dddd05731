"""The tool loop: call the model until it answers in words, asks for an approval, or runs out of rounds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.core import texts
from bot.core.history import Message, TokenCounter, prepare
from bot.core.permissions import Permissions
from bot.core.tool_runner import CallOutcome, ToolRunner, TurnScope
from bot.core.transcript import Hold
from bot.errors import ModelError
from bot.llm import ChatModel
from bot.types import ApprovalRequest, Conversation, Presentation, Reply, TextReply
from tools import Registry

DEFAULT_SYSTEM_PROMPT = """You are propbot, the assistant of a property management team, working inside \
their chat. You look up properties and maintenance requests and act on them with your tools.
- Use the tools for facts; never invent ids, addresses, prices or statuses.
- Scheduling or cancelling maintenance needs a person's approval. Call the tool when asked; the system \
asks for approval. Never claim it is done until a tool result says so.
- If a tool result reports an error, fix the arguments or explain the problem plainly.
- Several people may write in one channel; messages start with the writer's name.
- Be brief. Use short Markdown lists. Always include ids."""


@dataclass(frozen=True)
class LoopLimits:
    max_rounds: int  # model calls with tools per turn
    token_budget: int  # the prompt (system + history + tool schemas) is trimmed to this


class ToolLoop:
    def __init__(
        self,
        model: ChatModel,
        registry: Registry,
        permissions: Permissions,
        runner: ToolRunner,
        counter: TokenCounter,
        limits: LoopLimits,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.model = model
        self.registry = registry
        self.permissions = permissions
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
        hold: Hold | None = None,
        model_errors: bool = False,
    ) -> list[Reply]:
        """The replies for the user. `history` is extended in place and stays a valid request at every step.

        With `may_act=False` the model is offered no tools (it may only answer in words), and any call it
        makes anyway is answered unrun. With `hold`, the loop stops (LockLost) as soon as the conversation's
        lock is lost, before another model call or tool run. A model failure is answered in words, or raised
        with `model_errors=True` for a caller that has more to say about it."""
        allowed = self.permissions.allowed_tools(user, self.registry.names()) if may_act else []
        scope = TurnScope(user, user_name, conversation, frozenset(allowed))
        schemas = self.registry.schemas(allowed)
        presentations: list[Presentation] = []
        for _ in range(self.limits.max_rounds):
            if hold is not None:
                hold.check()
            prompt = prepare(history, self.system, self.limits.token_budget, self.counter, schemas)
            try:
                answer = await self.model.complete(prompt, schemas)
            except ModelError as exc:
                if model_errors:
                    raise
                return [texts.model_failed(exc)]
            if not answer.tool_calls and not isinstance(answer.message.get("content"), str):
                # A filtered or refused answer can come back with no content at all; stored like that it would
                # make every later request of this conversation invalid (400).
                answer.message["content"] = ""
            history.append(answer.message)
            if not answer.tool_calls:
                text = answer.message["content"] or texts.NO_ANSWER
                return [TextReply(text=text, presentations=presentations)]
            if hold is not None:
                hold.check()
            outcomes = await self.runner.run_calls(scope, answer.tool_calls) if may_act else _unrun(answer.tool_calls)
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
                return out
        return [texts.out_of_rounds(self.limits.max_rounds, presentations)]


_UNRUN = json.dumps({"ok": False, "error": "No tools may be used in this reply; report the outcome in words."})


def _unrun(calls: list[dict[str, Any]]) -> list[CallOutcome]:
    """Answers for calls a model made where it was offered no tools. They are not run, and not audited as the
    user's refused calls: the user asked for none of them."""
    return [CallOutcome(str(c.get("id")), str((c.get("function") or {}).get("name") or ""), _UNRUN) for c in calls]
