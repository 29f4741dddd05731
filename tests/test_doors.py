"""Every door, tried as an attacker would: each listener registered on the served Bolt app (read from the app, so
one added later is tried too) gets a signed, documented-shape payload (a) from a partner team outside
SLACK_ALLOWED_TEAMS, (b) from a person of the workspace with no role, (c) naming a record of another workspace.
Each is refused or shows nothing, changes nothing (maintenance requests, approvals, posts, the model) and reveals
no record; every refusal of (a) is the core gate's.

Real Bolt on a real aiohttp server, the fake Slack Web API and the fake model; nothing inside propbot is replaced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from adapters.slack.mount import BOLT
from bot.types import ApprovalStatus, TeamNotice
from tests.support.cards import Card, post_card
from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import BOT_USER, TEAM, MakeSlackBot, SlackBot, click, event_body
from tests.support.fake_slack_directory import group_updated, members_changed
from tests.support.waiting import eventually
from tools import outbox
from tools.db import Database
from tools.outbox import TEAM_NOTICE
from tools.tables import MaintenanceRequest

PERMISSIONS = """\
roles:
  staff: {tools: [search_properties, get_property, list_maintenance_requests, schedule_maintenance]}
  maintenance: {tools: [update_maintenance_status]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:USTAFF": staff
  "slack:T1:UTECH": maintenance
  "slack:TPARTNER:UPARTNER": manager
"""
PARTNER = ("UPARTNER", "TPARTNER")  # a manager's entry, but their team is not allowed: the allow-list comes first
NOBODY = ("UNOBODY", TEAM)  # of the workspace, with no role (the file has no default_role)
MAINT = "C0MAINT"
# Calls that only tell the clicker something (privately) or read: anything else is a change someone sees.
QUIET = {"chat.postEphemeral", "users.info", "auth.test"}


def person(user: str, team: str) -> dict[str, Any]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}


def interaction(kind: str, user: str, team: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "team": {"id": team, "domain": "x"},
        "user": person(user, team),
        "api_app_id": "A1",
        "token": "unused",
        "enterprise": None,
        "is_enterprise_install": False,
        **extra,
    }


def button(user: str, team: str, action_id: str, value: str, channel: str = "C1", ts: str = "1.1") -> dict[str, Any]:
    payload = click(user, action_id, value, channel, ts)
    payload.update(team={"id": team, "domain": "x"}, user=person(user, team), enterprise=None)
    return payload


def event(kind: str, user: str, team: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "user": user, "user_team": team, "team": team, "event_ts": "1.1", **fields}


class World:
    """The records an attacker aims at: a pending approval in C1, a notice of MR-5001 in the team's channel."""

    def __init__(self, bot: SlackBot, card: Card, request_id: str, notice_ts: str) -> None:
        self.bot = bot
        self.card = card
        self.request_id = request_id
        self.notice_ts = notice_ts


Payload = Callable[[World, str, str], tuple[str, dict[str, Any]]]  # -> ("event" | "click", body)


def _modal_values() -> dict[str, Any]:
    def select(value: str) -> dict[str, Any]:
        return {
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
        }

    chosen = {"text": {"type": "plain_text", "text": "P-1001"}, "value": "P-1001"}
    return {
        "property_id": {"propbot_property": {"type": "external_select", "selected_option": chosen}},
        "issue_type": {"value": select("plumbing")},
        "priority": {"value": select("high")},
        "description": {"value": {"type": "plain_text_input", "value": "The sink leaks under the cabinet"}},
        "preferred_date": {"value": {"type": "datepicker", "selected_date": None}},
        "post_in": {"value": {"type": "conversations_select", "selected_conversation": "C1"}},
    }


# One documented payload per listener, by the listener's name. A listener without one fails the test: a new door
# is tried before it ships.
PAYLOADS: dict[str, Payload] = {
    "on_mention": lambda w, u, t: (
        "event",
        event("app_mention", u, t, text=f"<@{BOT_USER}> cancel MR-5001", channel="C1", ts="5.1"),
    ),
    "on_message": lambda w, u, t: (
        "event",
        event("message", u, t, text="cancel MR-5001", channel="D9", channel_type="im", ts="5.2"),
    ),
    "on_other_event": lambda w, u, t: (
        "event",
        event("reaction_added", u, t, reaction="+1", item={"type": "message", "channel": "C1", "ts": "1.1"}),
    ),
    "on_thread_started": lambda w, u, t: (
        "event",
        {
            "type": "assistant_thread_started",
            "assistant_thread": {"user_id": u, "channel_id": "D9", "thread_ts": "6.1", "context": {}},
            "event_ts": "6.1",
        },
    ),
    "on_context_changed": lambda w, u, t: (
        "event",
        {
            "type": "assistant_thread_context_changed",
            "assistant_thread": {"user_id": u, "channel_id": "D9", "thread_ts": "6.1", "context": {}},
            "event_ts": "6.2",
        },
    ),
    "on_home_opened": lambda w, u, t: (
        "event",
        {"type": "app_home_opened", "user": u, "channel": "D9", "tab": "home", "event_ts": "7.1"},
    ),
    "on_feedback": lambda w, u, t: (
        "click",
        button(u, t, "propbot_feedback", "good|search_properties", "C1", w.card.ts),
    ),
    "on_new_request": lambda w, u, t: ("click", button(u, t, "propbot_new_request", "D9")),
    "on_property_search": lambda w, u, t: (
        "click",
        interaction(
            "block_suggestion",
            u,
            t,
            container={"type": "view", "view_id": "V2"},
            action_id="propbot_property",
            block_id="property_id",
            value="congress",
            view={"id": "V2", "type": "modal", "callback_id": "propbot_request"},
        ),
    ),
    "on_request_submitted": lambda w, u, t: (
        "click",
        interaction(
            "view_submission",
            u,
            t,
            trigger_id="1.2.4",
            view={
                "id": "V2",
                "team_id": TEAM,
                "type": "modal",
                "callback_id": "propbot_request",
                "private_metadata": "C1",
                "state": {"values": _modal_values()},
                "hash": "h",
            },
            response_urls=[],
        ),
    ),
    "on_mark": lambda w, u, t: ("click", button(u, t, "propbot_mark_done", w.request_id, MAINT, w.notice_ts)),
    "on_decision": lambda w, u, t: (
        "click",
        button(u, t, "propbot_approve", w.card.approval_id, w.card.channel, w.card.ts),
    ),
    "on_other_action": lambda w, u, t: ("click", button(u, t, "some_other_button", "x")),
    # A user group changed: Slack's signal, naming no one who asks. It can only make propbot look people up again,
    # which never gives anyone more than the directory says.
    "on_members_changed": lambda w, u, t: ("event", members_changed("SMANAGERS", t, added=[u], removed=[])),
    "on_updated": lambda w, u, t: ("event", group_updated("SMANAGERS", t, [u])),
}
# Listeners of events no person sends: nobody for the gate to refuse, and nothing may change.
NO_PERSON = frozenset({"on_members_changed", "on_updated"})


def listeners(bot: SlackBot) -> list[str]:
    assert bot.app is not None
    return sorted({listener.ack_function.__name__ for listener in bot.app[BOLT]._async_listeners})


async def world(bot: SlackBot, fake: FakeOpenAI, db: Database) -> World:
    card = await post_card(bot, fake)
    notice = TeamNotice(
        key="MR-5001:open", request_id="MR-5001", property_id="P-1001", city="Austin", status="open", title="t"
    )
    async with db.session() as session:
        await outbox.record(session, f"notice:{notice.key}", TEAM_NOTICE, notice.model_dump(mode="json"))
        await session.commit()
    await bot.dispatcher.courier.deliver_due()
    await bot.slack.wait_for("chat.postMessage", where=lambda c: c.args["channel"] == MAINT)
    ts = next(ts for (ch, ts) in bot.slack.messages if ch == MAINT)
    fake.default = lambda _request: text("I can only talk.")
    return World(bot, card, "MR-5001", ts)


async def snapshot(bot: SlackBot, db: Database, fake: FakeOpenAI) -> tuple[Any, ...]:
    async with db.session() as session:
        rows = (await session.execute(select(MaintenanceRequest.id, MaintenanceRequest.status))).all()
    approvals = sorted((a.id, a.status.value) for a in await bot.runtime.store.unsettled_approvals())
    seen = [c.method for c in bot.slack.calls if c.method not in QUIET]
    return sorted(rows), approvals, seen, len(fake.requests)


async def settle(bot: SlackBot) -> None:
    await eventually(lambda: bot.dispatcher.tasks.in_flight == 0)


async def send(bot: SlackBot, kind: str, body: dict[str, Any]) -> str:
    sent = await (bot.send_json(event_body(body)) if kind == "event" else bot.send_click(body))
    assert sent.status == 200, sent
    return sent.body


@pytest.fixture
def gate_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bot.core.gate")
    return caplog


async def test_every_slack_listener_has_a_payload_here(slack_bots: MakeSlackBot, sqlite_database: Database) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS)
    assert set(listeners(bot)) == set(PAYLOADS), "a listener without an attacker's payload in tests/test_doors.py"


async def test_a_partner_team_outside_the_allow_list_is_refused_by_the_gate_at_every_slack_door(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI, gate_log: pytest.LogCaptureFixture
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS, maintenance_channels="Austin=slack:C0MAINT")
    w = await world(bot, fake_openai, sqlite_database)
    bot.slack.teams["UPARTNER"] = "TPARTNER"  # users.info: the partner's own workspace
    for name in listeners(bot):
        before = await snapshot(bot, sqlite_database, fake_openai)
        gate_log.clear()
        kind, body = PAYLOADS[name](w, *PARTNER)
        answered = await send(bot, kind, body)
        if name not in NO_PERSON:
            await eventually(lambda: "slack:TPARTNER:UPARTNER is not in SLACK_ALLOWED_TEAMS" in gate_log.text)
        await settle(bot)
        assert await snapshot(bot, sqlite_database, fake_openai) == before, name
        assert "P-10" not in answered and "MR-" not in answered, name  # no record in the HTTP answer
    stored = await bot.runtime.store.get_approval(w.card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING
    assert bot.slack.violations == []


async def test_a_person_with_no_role_sees_nothing_and_changes_nothing_at_any_slack_door(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS, maintenance_channels="Austin=slack:C0MAINT")
    w = await world(bot, fake_openai, sqlite_database)
    asked = len(fake_openai.requests)
    for name in listeners(bot):
        rows, approvals, _, _ = await snapshot(bot, sqlite_database, fake_openai)
        calls = len(bot.slack.calls)
        kind, body = PAYLOADS[name](w, *NOBODY)
        answered = await send(bot, kind, body)
        await settle(bot)
        after_rows, after_approvals, _, _ = await snapshot(bot, sqlite_database, fake_openai)
        assert (after_rows, after_approvals) == (rows, approvals), name
        assert "P-10" not in answered and "MR-" not in answered, name
        shown = json.dumps([c.args for c in bot.slack.calls[calls:]])
        assert "P-1001" not in shown and "MR-5001" not in shown, f"{name} showed a record: {shown[:300]}"
    assert len(fake_openai.requests) > asked
    for request in fake_openai.requests[asked:]:  # the model was asked (a mention, a DM) but offered no tool
        assert not request.get("tools"), request.get("tools")
    assert [c for c in bot.slack.calls if c.method == "views.open"] == []  # no request form for them


async def test_ids_of_another_workspace_name_nothing_at_the_slack_doors(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    """A manager of T1 clicks buttons carrying T2's approval id and a notice's request id in a channel where
    propbot posted no notice of it: unknown, nothing changes."""
    bot = await slack_bots(sqlite_database, permissions=PERMISSIONS, maintenance_channels="Austin=slack:C0MAINT")
    w = await world(bot, fake_openai, sqlite_database)
    approval = await bot.runtime.store.get_approval(w.card.approval_id)
    assert approval is not None
    foreign = "appr_of_workspace_t2"
    elsewhere = approval.conversation.model_copy(update={"workspace": "T2"})
    await bot.runtime.store.create_approval(
        approval.model_copy(update={"id": foreign, "conversation": elsewhere}), 3600
    )
    before = await snapshot(bot, sqlite_database, fake_openai)
    await send(bot, "click", button("UMANAGER", TEAM, "propbot_approve", foreign, w.card.channel, w.card.ts))
    [note] = await bot.slack.wait_for("chat.postEphemeral", where=lambda c: c.args["user"] == "UMANAGER")
    assert "no longer exists" in note.args["text"]
    await send(bot, "click", button("UTECH", TEAM, "propbot_mark_done", "MR-5002", MAINT, w.notice_ts))
    [refused] = await bot.slack.wait_for("chat.postEphemeral", where=lambda c: c.args["user"] == "UTECH")
    assert "not one propbot made" in refused.args["text"]
    await settle(bot)
    assert await snapshot(bot, sqlite_database, fake_openai) == before
