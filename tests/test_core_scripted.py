"""The tool loop, approvals and history rules against a ScriptedModel: in process, no HTTP, no Redis.

The model answers from a script and refuses, as the real API does, any request whose history is invalid,
so every test here also checks that the history stays a valid request at every step.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app.runtime import assemble
from bot.config import Settings
from bot.core.agent import Agent
from bot.core.approvals import ApprovalDesk
from bot.core.permissions import parse_permissions
from bot.llm.scripted import ScriptedModel, ScriptedRequest, call, say
from bot.observability.audit import LogAudit
from bot.store.memory import MemoryStore
from bot.types import (
    ApprovalRequest,
    ApprovalStatus,
    Conversation,
    Decision,
    DecisionAction,
    DecisionOutcome,
    Incoming,
    TextReply,
)
from tests.support.fake_openai import unstamped
from tests.support.harness import MANAGER, PERMISSIONS_YAML, STAFF, VIEWER
from tests.support.scripts import SCHEDULE, requests_with_key
from tools import builtin_tools
from tools.db import Database


@dataclass
class Core:
    model: ScriptedModel
    agent: Agent
    desk: ApprovalDesk
    db: Database
    sent: int = 0

    async def say(self, user: str, text: str, channel: str = "C1") -> list[Any]:
        self.sent += 1
        conversation = Conversation(platform="slack", workspace="T1", channel=channel)
        return await self.agent.handle(
            Incoming(conversation=conversation, user=user, text=text, event_id=f"e{self.sent}")
        )

    async def decide(self, approval_id: str, user: str, action: DecisionAction = DecisionAction.APPROVE) -> Any:
        decision = Decision(approval_id=approval_id, user=user, action=action, platform="slack", workspace="T1")
        return await self.desk.decide(decision)


@pytest.fixture
async def core(sqlite_database: Database) -> AsyncIterator[Core]:
    # Settings only feed the composition root here: the model is the script, the store is memory.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        openai_api_key="sk-unused-by-the-scripted-model",
        max_tool_rounds=3,
        history_token_budget=2000,
        rate_limit_user_per_minute=0,
        rate_limit_workspace_per_minute=0,
    )
    model = ScriptedModel()
    parts = assemble(
        settings,
        MemoryStore(),
        sqlite_database,
        model,
        builtin_tools(),
        parse_permissions(PERMISSIONS_YAML),
        LogAudit(),
    )
    yield Core(model, parts.agent, parts.desk, sqlite_database)
    assert model.violations == [], model.violations


async def test_a_text_answer_is_the_reply(core: Core) -> None:
    core.model.push(say("hello there"))
    [reply] = await core.say(VIEWER, "hi")
    assert isinstance(reply, TextReply) and reply.text == "hello there"
    assert unstamped(core.model.requests[0].last["content"]) == "hi"


async def test_a_tool_result_goes_back_to_the_model_and_its_presentation_to_the_user(core: Core) -> None:
    core.model.push(call("get_property", property_id="P-1001"), lambda r: say(f"found {r.results()[0]['ok']}"))
    [reply] = await core.say(VIEWER, "P-1001?")
    assert isinstance(reply, TextReply) and reply.text == "found True"
    assert reply.presentations and "1208 S Congress Ave" in reply.presentations[0].title + str(reply.presentations)


async def test_invalid_arguments_come_back_as_a_result_the_model_can_correct(core: Core) -> None:
    core.model.push(call("get_property", wrong="x"), call("get_property", property_id="P-1001"), say("ok"))
    await core.say(VIEWER, "P-1001?")
    first_result = core.model.requests[1].results()[0]
    assert first_result["ok"] is False and "invalid arguments" in first_result["error"]
    assert core.model.requests[2].results()[0]["ok"] is True


async def test_a_tool_not_offered_is_refused_when_called_anyway(core: Core) -> None:
    core.model.push(call("schedule_maintenance", **SCHEDULE), say("sorry"))
    await core.say(VIEWER, "schedule it")
    assert "schedule_maintenance" not in core.model.requests[0].offered
    assert "not permitted" in core.model.requests[1].results()[0]["error"]


async def test_the_loop_stops_after_its_rounds(core: Core) -> None:
    core.model.default = call(
        "search_properties",
        location="Austin",
        property_type=None,
        min_price=None,
        max_price=None,
        min_bedrooms=None,
        status=None,
    )
    [reply] = await core.say(VIEWER, "loop forever")
    assert isinstance(reply, TextReply) and reply.is_error and "3 tool steps" in reply.text
    assert len(core.model.requests) == 3


def schedule_then_report(request: ScriptedRequest) -> dict[str, Any]:
    if request.last["role"] == "user":
        return call("schedule_maintenance", **SCHEDULE)
    return say("outcome: " + json.dumps(request.results()[-1]))


async def test_a_risky_call_waits_and_an_approval_runs_it_once(core: Core) -> None:
    core.model.default = schedule_then_report
    replies = await core.say(STAFF, "plumber for P-1001")
    [request] = [r for r in replies if isinstance(r, ApprovalRequest)]
    assert len(core.model.requests) == 1  # the loop stopped at the approval
    result = await core.decide(request.approval.id, MANAGER)
    assert result.outcome is DecisionOutcome.DONE and result.approval.status is ApprovalStatus.DONE
    assert await requests_with_key(core.db, request.approval.id) == 1
    # The follow-up offered no tools, and the outcome reached the model as a result of the same tool.
    follow_up = core.model.requests[-1]
    assert follow_up.offered == [] and follow_up.results()[-1]["ok"] is True
    again = await core.decide(request.approval.id, MANAGER)
    assert again.outcome is DecisionOutcome.ALREADY_DECIDED
    assert await requests_with_key(core.db, request.approval.id) == 1


async def test_self_approval_is_refused_and_the_requester_may_cancel(core: Core) -> None:
    core.model.default = schedule_then_report
    [request] = [r for r in await core.say(MANAGER, "plumber") if isinstance(r, ApprovalRequest)]
    refused = await core.decide(request.approval.id, MANAGER)
    assert refused.outcome is DecisionOutcome.REFUSED and "your own request" in refused.message
    cancelled = await core.decide(request.approval.id, MANAGER, DecisionAction.CANCEL)
    assert cancelled.outcome is DecisionOutcome.CANCELLED
    assert await requests_with_key(core.db, request.approval.id) == 0


async def test_a_long_conversation_stays_a_valid_request_under_trimming(core: Core) -> None:
    """Forty exchanges with tool calls against a small budget: trimming never splits a call from its result
    (the scripted model would refuse the request, and the fixture fails on any violation)."""

    def lookup_then_answer(request: ScriptedRequest) -> dict[str, Any]:
        if request.last["role"] == "user":
            return call("list_maintenance_requests", property_id="P-1001", status=None)
        return say("here they are " + "x" * 200)

    core.model.default = lookup_then_answer
    for i in range(40):
        [reply] = await core.say(VIEWER, f"question {i} " + "y" * 100)
        assert isinstance(reply, TextReply) and not reply.is_error, reply
    assert len(core.model.requests) == 80
