"""Approval cards and button clicks through the real server, Bolt, slack_sdk and the fakes."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from bot.types import ApprovalStatus
from tests.support.cards import has_buttons, post_card
from tests.support.fake_openai import FakeOpenAI, call, calls, last_message, text, tool_results
from tests.support.fake_slack import MakeSlackBot, click, mention
from tests.support.scripts import requests_with_key
from tests.support.waiting import eventually
from tools.db import Database


async def test_card_shows_details_and_both_buttons(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    card = await post_card(bot, fake_openai)
    blocks = card.post.args["blocks"]
    rendered = json.dumps(blocks)
    assert card.post.args["thread_ts"] == card.thread and card.post.args["text"].startswith("Approval needed")
    assert blocks[0]["type"] == "header"
    for detail in ("schedule maintenance", "1208 S Congress Ave", "Plumbing", "High", "Kitchen sink is leaking"):
        assert detail in rendered, detail
    assert "Requested by <@USTAFF>" in rendered and "Expires <!date^" in rendered
    approve, cancel = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert (approve["action_id"], approve["style"]) == ("propbot_approve", "primary")
    assert approve["value"] == cancel["value"] == card.approval_id
    assert approve["confirm"]["confirm"]["text"] == "Approve"
    assert (cancel["action_id"], cancel["style"]) == ("propbot_cancel", "danger")
    assert bot.slack.violations == []


async def test_manager_approves_card_is_replaced_and_request_created_once(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    card = await post_card(bot, fake_openai)
    assert await requests_with_key(database, card.approval_id) == 0
    sent = await bot.send_click(click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts))
    assert sent.status == 200

    [update] = await bot.slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (card.channel, card.ts)
    assert not has_buttons(bot, card)
    rendered = json.dumps(update.args["blocks"])
    assert "Approved by <@UMANAGER>" in rendered and "1208 S Congress Ave" in rendered
    assert "Done: Request MR-" in rendered and "created" in rendered
    assert await requests_with_key(database, card.approval_id) == 1
    answers = await bot.slack.wait_for("chat.postMessage", 2)
    final = answers[-1]
    assert final.args["thread_ts"] == card.thread and '\\"ok\\": true' in json.dumps(final.args["blocks"])
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.DONE and stored.decided_by_name == "Maria Manager"
    # A second click, from anyone, changes nothing: only the clicker hears about it.
    await bot.send_click(click("UMANAGER2", "propbot_approve", card.approval_id, card.channel, card.ts))
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert note.args["user"] == "UMANAGER2" and "already done" in note.args["text"]
    assert len(bot.slack.calls_to("chat.update")) == 1 and await requests_with_key(database, card.approval_id) == 1


async def test_cancel_replaces_card_and_creates_nothing(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    card = await post_card(bot, fake_openai)
    await bot.send_click(click("UMANAGER", "propbot_cancel", card.approval_id, card.channel, card.ts))
    [update] = await bot.slack.wait_for("chat.update")
    assert "Cancelled by <@UMANAGER>" in json.dumps(update.args["blocks"]) and not has_buttons(bot, card)
    await bot.slack.wait_for("chat.postMessage", 2)
    assert await requests_with_key(database, card.approval_id) == 0


async def test_unauthorized_click_gets_an_ephemeral_refusal_and_buttons_stay(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    card = await post_card(bot, fake_openai)
    for clicker in ("USTAFF", "UVIEWER"):
        await bot.send_click(click(clicker, "propbot_approve", card.approval_id, card.channel, card.ts))
    notes = await bot.slack.wait_for("chat.postEphemeral", 2)
    assert sorted(n.args["user"] for n in notes) == ["USTAFF", "UVIEWER"]
    assert all(n.args["channel"] == card.channel for n in notes)
    await bot.idle()
    assert bot.slack.calls_to("chat.update") == [] and has_buttons(bot, card)
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING
    assert await requests_with_key(sqlite_database, card.approval_id) == 0


async def test_twenty_concurrent_clicks_execute_once(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    card = await post_card(bot, fake_openai)
    users = ["UMANAGER", "UMANAGER2"]
    sent = await asyncio.gather(
        *(
            bot.send_click(click(users[i % 2], "propbot_approve", card.approval_id, card.channel, card.ts))
            for i in range(20)
        )
    )
    assert [s.status for s in sent] == [200] * 20
    await bot.slack.wait_for("chat.update")
    await bot.slack.wait_for("chat.postEphemeral", 19)
    await bot.slack.wait_for("chat.postMessage", 2)
    await bot.idle()
    assert len(bot.slack.calls_to("chat.update")) == 1
    notes = bot.slack.calls_to("chat.postEphemeral")
    assert len(notes) == 19
    # Losing clicks wait for the winner's tool, so each is told the final state, not "approved".
    assert all("already done" in n.args["text"] and "created" in n.args["text"] for n in notes)
    assert await requests_with_key(database, card.approval_id) == 1


async def test_an_approved_cancellation_card_says_cancelled_in_the_tools_words(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    def cancel_then_report(request: dict[str, Any]) -> dict[str, Any]:
        if last_message(request)["role"] == "user":
            return calls(call("cancel_maintenance_request", {"request_id": "MR-5002"}))
        return text("outcome: " + json.dumps(tool_results(request)[-1]))

    bot = await slack_bots(database)
    fake_openai.default = cancel_then_report
    await bot.send_event(mention("USTAFF", "cancel MR-5002 please"))
    [post] = await bot.slack.wait_for("chat.postMessage", where=lambda c: "actions" in json.dumps(c.args["blocks"]))
    approval_id = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    ts = next(ts for (_, ts), m in bot.slack.messages.items() if m["blocks"] == post.args["blocks"])
    await bot.send_click(click("UMANAGER", "propbot_approve", approval_id, post.args["channel"], ts))
    [update] = await bot.slack.wait_for("chat.update")
    rendered = json.dumps(update.args["blocks"])
    assert "Done: Request MR-5002 cancelled." in rendered and "created" not in rendered
    stored = await bot.runtime.store.get_approval(approval_id)
    assert stored is not None and stored.result is not None and stored.result["data"]["status"] == "cancelled"


@pytest.mark.parametrize("value", ["no-such-approval", "x" * 5000, ""])
async def test_tampered_approval_id_changes_nothing(
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    value: str,
) -> None:
    caplog.set_level(logging.INFO)
    bot = await slack_bots(sqlite_database)
    card = await post_card(bot, fake_openai)
    asked = len(fake_openai.requests)
    sent = await bot.send_click(click("UMANAGER", "propbot_approve", value, card.channel, card.ts))
    assert sent.status == 200
    if value == "no-such-approval":
        [note] = await bot.slack.wait_for("chat.postEphemeral")
        assert "no longer exists" in note.args["text"]
    else:
        await eventually(lambda: "without a usable user or approval id" in caplog.text)
    await bot.idle()
    assert bot.slack.calls_to("chat.update") == [] and has_buttons(bot, card)
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING
    assert len(fake_openai.requests) == asked and await requests_with_key(sqlite_database, card.approval_id) == 0


async def test_expired_approval_card_says_so(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, approval_ttl=0.5)
    card = await post_card(bot, fake_openai)

    async def swept() -> bool:  # once the approval's 0.5 s are over
        return await bot.dispatcher.sweep_expired() == 1

    await eventually(swept)
    [update] = await bot.slack.wait_for("chat.update")
    rendered = json.dumps(update.args["blocks"])
    assert "Expired" in rendered and "nothing was done" in rendered and not has_buttons(bot, card)
    # A late click finds it expired: the card still says so, and nothing runs.
    await bot.send_click(click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts))
    late = await bot.slack.wait_for("chat.update", 2)
    assert "Expired" in json.dumps(late[-1].args["blocks"]) and not has_buttons(bot, card)
    assert await requests_with_key(sqlite_database, card.approval_id) == 0


async def test_a_click_whose_payload_names_no_team_gets_no_role_even_from_an_approver(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    # Slack always sends `user.team_id` and `team`; a payload without either (a proxy that strips fields, a
    # hand-made request with a leaked signing secret) must not be read as the home workspace's manager.
    bot = await slack_bots(sqlite_database)
    card = await post_card(bot, fake_openai)
    payload = click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts)
    del payload["team"], payload["user"]["team_id"]
    assert (await bot.send_click(payload)).status == 200
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert note.args["user"] == "UMANAGER" and "not allowed to use propbot" in note.args["text"]
    stored = await bot.runtime.store.get_approval(card.approval_id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING
    assert await requests_with_key(sqlite_database, card.approval_id) == 0
