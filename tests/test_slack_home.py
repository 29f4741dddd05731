"""Feedback buttons, the App Home tab and the maintenance request modal, through the real server and Bolt.
Payloads follow Slack's documentation: block_actions from a message and from a Home view (no `channel`, no
`message`), block_suggestion for an external select, view_submission of a modal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from bot.observability.audit_stream import RedisStreamAudit, read_audit
from bot.types import ApprovalStatus
from tests.support.cards import has_buttons, post_card
from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import TEAM, MakeSlackBot, SlackBot, click, mention
from tests.support.processes import run_command
from tests.support.scripts import requests_with_key
from tests.support.waiting import eventually
from tools.db import Database


def user(user_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM}


def feedback_click(user_id: str, value: str, channel: str, ts: str, thread: str) -> dict[str, Any]:
    payload = click(user_id, "propbot_feedback", value, channel, ts)
    payload["message"]["thread_ts"] = thread
    action = {"type": "feedback_buttons", "action_id": "propbot_feedback", "block_id": "fb", "value": value}
    payload["actions"] = [{**action, "action_ts": "2"}]
    return payload


def home_click(user_id: str, action_id: str, value: str, view: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": user(user_id),
        "api_app_id": "A1",
        "token": "unused",
        "container": {"type": "view", "view_id": "V1"},
        "trigger_id": "1.2.3",
        "team": {"id": TEAM, "domain": "test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {"id": "V1", "team_id": TEAM, "type": "home", "blocks": view["blocks"], "private_metadata": ""},
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "3"},
        ],
    }


def home_opened(user_id: str, channel: str = "D7") -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user_id, "channel": channel, "tab": "home", "event_ts": "1.1"}


async def open_home(bot: SlackBot, user_id: str) -> dict[str, Any]:
    bot.slack.homes.pop(user_id, None)
    assert (await bot.send_event(home_opened(user_id))).status == 200
    await eventually(lambda: user_id in bot.slack.homes)
    return bot.slack.homes[user_id]


def buttons(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], str(e.get("value"))) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]


async def test_feedback_is_recorded_counted_and_acknowledged(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI, redis_url: str, tmp_path: Path
) -> None:
    bot = await slack_bots(sqlite_database)
    trail = RedisStreamAudit(bot.runtime.redis)  # type: ignore[arg-type]
    bot.runtime.desk.audit = trail
    bot.dispatcher.surfaces.audit = trail
    labels = {"tool": "search_properties", "way": "bad"}
    before = REGISTRY.get_sample_value("propbot_feedback_total", labels) or 0.0
    fake_openai.push(text("Here you go."))
    event = mention("USTAFF", "anything in Austin?")
    await bot.send_event(event)
    [answer] = await bot.slack.wait_for("chat.postMessage")
    assert answer.args["blocks"][-1]["type"] == "context_actions"
    ts = next(ts for (channel, ts), m in bot.slack.messages.items() if channel == "C1")
    payload = feedback_click("UMANAGER", "bad|search_properties,not_a_tool", "C1", ts, event["ts"])
    assert (await bot.send_click(payload)).status == 200

    [ack] = await bot.slack.wait_for("chat.postEphemeral")
    assert ack.args["user"] == "UMANAGER" and ack.args["thread_ts"] == event["ts"] and "noted" in ack.args["text"]
    assert REGISTRY.get_sample_value("propbot_feedback_total", labels) == before + 1
    [entry] = await read_audit(bot.runtime.redis, kinds={"feedback"})  # type: ignore[arg-type]
    assert (entry.user, entry.outcome, entry.tool) == ("slack:T1:UMANAGER", "bad", "search_properties")
    assert entry.conversation == "slack:T1:C1"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OPENAI_"))}
    code, out, err = await run_command(["audit", "--feedback"], {**env, "REDIS_URL": redis_url}, tmp_path)
    assert code == 0, err
    assert "feedback bad" in out and "slack:T1:UMANAGER" in out
    assert ["search_properties", "0", "1"] in [line.split() for line in out.splitlines()]
    assert "approval_requested" not in out


async def test_home_lists_pending_approvals_and_a_click_there_decides_the_card(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    card = await post_card(bot, fake_openai)

    manager_view = await open_home(bot, "UMANAGER")
    assert ("propbot_approve", card.approval_id) in buttons(manager_view)
    assert ("propbot_cancel", card.approval_id) in buttons(manager_view)
    staff_view = await open_home(bot, "USTAFF")
    assert ("propbot_cancel", card.approval_id) in buttons(staff_view)  # withdraw your own request
    assert ("propbot_approve", card.approval_id) not in buttons(staff_view)
    viewer_view = await open_home(bot, "UVIEWER")
    assert all(value != card.approval_id for _, value in buttons(viewer_view))
    assert ("propbot_new_request", "D7") not in buttons(viewer_view)  # viewers may not ask for maintenance
    assert ("propbot_new_request", "D7") in buttons(staff_view)

    bot.slack.homes.pop("UMANAGER")
    payload = home_click("UMANAGER", "propbot_approve", card.approval_id, manager_view)
    assert (await bot.send_click(payload)).status == 200
    await eventually(lambda: not has_buttons(bot, card))  # the card in the channel is closed too
    assert await requests_with_key(database, card.approval_id) == 1
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.DONE
    await eventually(lambda: "UMANAGER" in bot.slack.homes)
    redrawn = bot.slack.homes["UMANAGER"]
    assert all(value != card.approval_id for _, value in buttons(redrawn))
    assert "Approved and done: Request MR-" in json.dumps(redrawn["blocks"])  # what came of the click

    # The same click again (Slack redelivers, or a second tab): nothing runs twice.
    bot.slack.homes.pop("UMANAGER")
    await bot.send_click(home_click("UMANAGER", "propbot_approve", card.approval_id, manager_view))
    await eventually(lambda: "UMANAGER" in bot.slack.homes)
    assert "already" in json.dumps(bot.slack.homes["UMANAGER"]["blocks"])  # told in the tab, not in a channel
    assert await requests_with_key(database, card.approval_id) == 1
    assert bot.slack.violations == []


def submission(values: dict[str, Any], metadata: str = "D7") -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": user("USTAFF"),
        "api_app_id": "A1",
        "token": "unused",
        "trigger_id": "1.2.4",
        "view": {
            "id": "V2",
            "team_id": TEAM,
            "type": "modal",
            "callback_id": "propbot_request",
            "private_metadata": metadata,
            "state": {"values": values},
            "hash": "h",
        },
        "response_urls": [],
    }


def form(description: str | None) -> dict[str, Any]:
    def select(value: str) -> dict[str, Any]:
        option = {"text": {"type": "plain_text", "text": value}, "value": value}
        return {"type": "static_select", "selected_option": option}

    return {
        "property_id": {
            "propbot_property": {
                "type": "external_select",
                "selected_option": {"text": {"type": "plain_text", "text": "P-1001"}, "value": "P-1001"},
            }
        },
        "issue_type": {"value": select("plumbing")},
        "priority": {"value": select("high")},
        "description": {"value": {"type": "plain_text_input", "value": description}},
        "preferred_date": {"value": {"type": "datepicker", "selected_date": None}},
        "post_in": {"value": {"type": "conversations_select", "selected_conversation": None}},
    }


async def test_the_request_modal_becomes_one_approval_without_the_model(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    staff_view = await open_home(bot, "USTAFF")
    await bot.send_click(home_click("USTAFF", "propbot_new_request", "D7", staff_view))
    [opened] = await bot.slack.wait_for("views.open")
    modal = bot.slack.modals[-1]
    assert opened.args["trigger_id"] == "1.2.3" and modal["private_metadata"] == "D7"
    choices = {b["block_id"]: b for b in modal["blocks"]}
    assert [o["value"] for o in choices["priority"]["element"]["options"]] == ["low", "medium", "high", "emergency"]
    assert "plumbing" in [o["value"] for o in choices["issue_type"]["element"]["options"]]

    search = {
        "type": "block_suggestion",
        "user": user("USTAFF"),
        "container": {"type": "view", "view_id": "V2"},
        "api_app_id": "A1",
        "token": "unused",
        "action_id": "propbot_property",
        "block_id": "property_id",
        "value": "congress",
        "team": {"id": TEAM, "domain": "test"},
        "view": {"id": "V2", "type": "modal", "callback_id": "propbot_request"},
    }
    found = await bot.send_click(search)
    options = json.loads(found.body)["options"]
    assert options and options[0]["value"] == "P-1001" and "Congress" in options[0]["text"]["text"]

    refused = await bot.send_click(submission(form(None)))
    assert json.loads(refused.body)["response_action"] == "errors"
    assert "description" in json.loads(refused.body)["errors"]

    accepted = await bot.send_click(submission(form("Kitchen sink leaks under the cabinet")))
    assert accepted.status == 200 and accepted.body in ("", "{}")
    [card] = await bot.slack.wait_for("chat.postMessage", where=lambda c: "propbot_approve" in json.dumps(c.args))
    assert card.args["channel"] == "D7" and "Kitchen sink leaks" in json.dumps(card.args["blocks"])
    await eventually(lambda: "Your request was sent" in json.dumps(bot.slack.homes.get("USTAFF", {})))
    pending = [a for a in await bot.runtime.store.unsettled_approvals() if a.status is ApprovalStatus.PENDING]
    assert len(pending) == 1 and pending[0].tool == "schedule_maintenance"
    assert pending[0].arguments["property_id"] == "P-1001" and pending[0].requested_by == "slack:T1:USTAFF"
    assert fake_openai.requests == []  # no model on this path
    assert bot.slack.violations == []
