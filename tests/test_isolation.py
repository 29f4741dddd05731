"""Workspaces stay apart: one never reads another's history or decides another's approvals; and long
input is cut before the model sees it. (Foreign ids on the agent itself: test_agent_approvals.py.)"""

from __future__ import annotations

import json
from typing import Any

from adapters.slack.blocks import APPROVE_ACTION
from bot.types import ApprovalRequest, ApprovalStatus, Decision, DecisionAction, DecisionOutcome, TextReply
from tests.support.fake_openai import FakeOpenAI, call, calls, last_message, text, unstamped
from tests.support.fake_slack import MakeSlackBot, click
from tests.support.harness import MANAGER, STAFF, Harness
from tests.support.peek import history_of
from tests.support.scripts import SCHEDULE
from tools.db import Database


def said(request: dict[str, Any]) -> str:
    return json.dumps([m for m in request["messages"] if m["role"] != "system"])


async def test_the_same_channel_id_in_two_workspaces_never_shares_history(make_harness: Any) -> None:
    h: Harness = await make_harness()
    h.fake.default = lambda request: text("noted")
    await h.say(MANAGER, "the T1 gate code is 4417", channel="C1", workspace="T1")
    await h.say("slack:T2:UOTHER", "what is the gate code?", channel="C1", workspace="T2")
    t2_request = h.fake.requests[-1]
    assert "4417" not in said(t2_request)
    assert "what is the gate code?" in said(t2_request)

    await h.say(MANAGER, "and again?", channel="C1", workspace="T1")
    t1_request = h.fake.requests[-1]
    assert "4417" in said(t1_request) and "what is the gate code?" not in said(t1_request)
    assert await history_of(h.store, "slack:T1:C1") != await history_of(h.store, "slack:T2:C1")


async def ask_for_approval(h: Harness) -> Any:
    h.fake.default = lambda request: (
        calls(call("schedule_maintenance", SCHEDULE)) if last_message(request)["role"] == "user" else text("done")
    )
    [request] = [r for r in await h.say(STAFF, "schedule it") if isinstance(r, ApprovalRequest)]
    return request.approval


async def test_an_approval_cannot_be_decided_from_another_platform(make_harness: Any) -> None:
    h: Harness = await make_harness()
    approval = await ask_for_approval(h)
    for platform, workspace in (("teams", "T1"), ("teams", "tenant-1")):
        decision = Decision(
            approval_id=approval.id,
            user="teams:tenant-1:aad-manager",  # a manager on Teams, but the approval belongs to Slack T1
            action=DecisionAction.APPROVE,
            platform=platform,  # type: ignore[arg-type]
            workspace=workspace,
        )
        assert (await h.desk.decide(decision)).outcome is DecisionOutcome.NOT_FOUND
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING and stored.decided_by is None


async def test_a_slack_click_from_another_team_changes_nothing(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    fake_openai.default = lambda request: (
        calls(call("schedule_maintenance", SCHEDULE)) if last_message(request)["role"] == "user" else text("done")
    )
    [request] = [r for r in await bot.runtime.agent.handle(Harness.incoming(STAFF, "schedule it"))]
    assert isinstance(request, ApprovalRequest)
    approval = request.approval

    payload = click("UMANAGER", APPROVE_ACTION, approval.id, "C1", "1600000000.000100")
    payload["team"]["id"] = "T2"  # the same user id and button, but a person of another workspace
    payload["user"]["team_id"] = "T2"
    sent = await bot.send_click(payload)
    assert sent.status == 200
    [notice] = await bot.slack.wait_for("chat.postEphemeral")
    # slack:T2:UMANAGER is not T1's manager: the click is refused, whatever the payload's `team` says.
    assert "not allowed" in str(notice.args.get("text"))
    stored = await bot.runtime.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING and stored.decided_by is None
    assert bot.slack.calls_to("chat.update") == []
    assert len(fake_openai.requests) == 1  # no tool ran, so no follow-up answer was asked for


async def test_long_input_is_cut_with_a_notice_and_the_model_sees_only_the_cut(make_harness: Any) -> None:
    h: Harness = await make_harness(max_message_chars=100)
    h.fake.push(text("read it"))
    replies = await h.say(MANAGER, "A" * 100 + "B" * 5000)
    assert isinstance(replies[0], TextReply) and "longer than 100 characters" in replies[0].text
    assert isinstance(replies[1], TextReply) and replies[1].text == "read it"
    [user_message] = [m for m in h.fake.requests[0]["messages"] if m["role"] == "user"]
    assert unstamped(user_message["content"]) == "A" * 100
    history = await history_of(h.store, h.conversation().key)
    assert "B" not in json.dumps(history)
