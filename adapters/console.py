"""Terminal chat with the same agent core: for a local trial, and scriptable through standard input."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import TextIO

from adapters.plain import approval_text, presentation_text
from bot.core.port import CorePort
from bot.types import (
    ApprovalRequest,
    AuditEvent,
    Conversation,
    Decision,
    DecisionAction,
    Incoming,
    Reply,
    TextReply,
)

QUIT = "/quit"


class ConsoleActivity:
    """An audit listener that shows tool activity as it happens."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def record(self, event: AuditEvent) -> None:
        args = json.dumps(event.arguments, separators=(",", ":"))
        outcome = "" if event.outcome in ("", event.kind) else f" -> {event.outcome}"
        result = f" {event.result}" if event.result else ""
        self.out.write(f"  · {event.kind} {event.tool}({args}){outcome}{result}\n")
        self.out.flush()


class ConsoleChat:
    def __init__(
        self,
        core: CorePort,
        user: str,
        approver: str | None,
        inp: TextIO = sys.stdin,
        out: TextIO = sys.stdout,
    ) -> None:
        self.core = core
        self.user = user
        self.approver = approver or user
        self.inp = inp
        self.out = out
        workspace = user.split(":")[1] if user.count(":") >= 2 else "local"
        self.conversation = Conversation(platform="console", workspace=workspace, channel="terminal")

    async def _read(self, prompt: str) -> str | None:
        """The next line, or None at end of input (Ctrl-D)."""
        self.out.write(prompt)
        self.out.flush()
        line = await asyncio.to_thread(self.inp.readline)
        if not line:
            # Ctrl-D ends input without a newline; without one the shell's prompt lands after ours.
            self._say("")
            return None
        return line.rstrip("\n")

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def run(self) -> None:
        self._say(f"propbot terminal chat as {self.user} (approver: {self.approver}). Ctrl-D or {QUIT} quits.")
        while (line := await self._read("you> ")) is not None:
            if line.strip() == QUIT:
                return
            if not line.strip():
                continue  # a stray Enter is not a message, and not a reason to leave
            message = Incoming(conversation=self.conversation, user=self.user, text=line, event_id=str(uuid.uuid4()))
            await self._show(await self.core.answer(message))

    async def _show(self, replies: list[Reply]) -> None:
        for reply in replies:
            if isinstance(reply, TextReply):
                self._say(f"bot> {reply.text}" if reply.text else "bot>")
                for p in reply.presentations:
                    self._say(presentation_text(p))
            elif isinstance(reply, ApprovalRequest):
                await self._ask(reply)

    async def _ask(self, request: ApprovalRequest) -> None:
        self._say(approval_text(request.approval))
        choices: dict[str, DecisionAction] = {"a": DecisionAction.APPROVE, "c": DecisionAction.CANCEL}
        answer = ""
        while answer not in choices:
            line = await self._read("[a]pprove / [c]ancel? ")
            if line is None:
                self._say("(left pending)")
                return
            answer = line.strip().lower()[:1]
        decision = Decision(
            approval_id=request.approval.id,
            user=self.approver,
            action=choices[answer],
            platform="console",
            workspace=self.conversation.workspace,
        )
        result = await self.core.decide(decision)
        self._say(f"[{result.outcome.value}] {result.message}")
        await self._show(result.replies)
