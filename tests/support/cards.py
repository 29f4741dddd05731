"""Pending approvals with their cards posted, the starting point of every click test (Slack and Teams)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from tests.support.fake_connector import ConnectorCall, TeamsRig, message
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import Call, SlackBot, mention
from tests.support.scripts import schedule_then_report


@dataclass
class Card:
    approval_id: str
    channel: str
    ts: str
    thread: str
    post: Call


async def post_card(bot: SlackBot, fake: FakeOpenAI, user: str = "USTAFF") -> Card:
    fake.default = schedule_then_report
    event = mention(user, "please get a plumber to P-1001, the sink leaks")
    assert (await bot.send_event(event)).status == 200
    return await posted_card(bot, event["ts"])


async def posted_card(bot: SlackBot, thread: str) -> Card:
    """The approval card the bot posted (asked for in the message `thread`), once its location is stored."""
    [post] = await bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: c.args.get("thread_ts") == thread and "actions" in json.dumps(c.args["blocks"]),
    )
    actions = next(b for b in post.args["blocks"] if b["type"] == "actions")
    ts = next(ts for (ch, ts), m in bot.slack.messages.items() if m["blocks"] == post.args["blocks"])
    card = Card(actions["elements"][0]["value"], post.args["channel"], ts, thread, post)
    # The card's location is stored so any process (or the expiry sweeper) can replace it.
    for _ in range(100):
        stored = await bot.runtime.store.get_approval(card.approval_id)
        if stored is not None and stored.card_ref:
            break
        await asyncio.sleep(0.02)
    return card


def has_buttons(bot: SlackBot, card: Card) -> bool:
    return any(b["type"] == "actions" for b in bot.slack.messages[(card.channel, card.ts)]["blocks"])


async def ask(rig: TeamsRig) -> tuple[str, ConnectorCall]:
    """Staff asks for a plumber; returns the approval id and the posted card."""
    rig.harness.fake.default = schedule_then_report
    body = message(rig.connector, "schedule a plumber at P-1001", user="aad-staff", name="Sam Staff")
    before = len(rig.connector.messages())
    assert (await rig.post(body))[0] == 200
    [posted] = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages()[before:] if m.cards])
    [card] = posted.cards
    approval_id = card["actions"][0]["data"]["approval_id"]
    return approval_id, posted
