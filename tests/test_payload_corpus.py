"""Every payload shape the platforms document, through the real routes: handled (answered, decided, or
ignored on purpose with a log line saying why) or refused with a 4xx naming the reason, file by file.

The files are in tests/payloads/ (README there names the documentation page each follows). Placeholders
such as {{APPROVAL_ID}} are filled in here, so a click really decides an approval this test created.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import ApprovalStatus
from tests.support.cards import ask, post_card, posted_card
from tests.support.fake_connector import StartTeams, TeamsRig
from tests.support.fake_openai import FakeOpenAI, text
from tests.support.fake_slack import APP_TOKEN, FakeSlack, MakeSlackBot, SlackBot
from tests.support.fake_socket_mode import FakeSocketMode
from tests.support.scripts import requests_with_key, schedule_then_report
from tests.support.waiting import eventually
from tools.db import Database

PAYLOADS = Path(__file__).parent / "payloads"
CARD = "application/vnd.microsoft.card.adaptive"


class Verdict(Enum):
    ANSWERED = "answered"  # a turn ran and its reply was posted
    APPROVED = "approved"  # the click decided the pending approval: tool ran once, card replaced
    CANCELLED = "cancelled"  # the click cancelled the pending approval: nothing ran, card replaced
    IGNORED = "ignored"  # 200, nothing happened on purpose, and a log line says why
    REFUSED = "refused"  # the click changed nothing and only the clicker was told why


SLACK = {
    "block_actions_workspace.json": Verdict.APPROVED,
    "block_actions_grid_org_install.json": Verdict.APPROVED,
    # A partner organisation's user has no role here beyond the default (viewer): they may not approve.
    "block_actions_slack_connect.json": Verdict.REFUSED,
    "block_actions_in_thread.json": Verdict.APPROVED,
    "block_actions_ephemeral.json": Verdict.APPROVED,
    "block_actions_requester_cancels.json": Verdict.CANCELLED,
    "event_app_mention.json": Verdict.ANSWERED,
    "event_app_mention_in_thread.json": Verdict.ANSWERED,
    # Not answered by default: propbot talks to its own workspace unless SLACK_ALLOWED_TEAMS names others.
    "event_app_mention_slack_connect.json": Verdict.IGNORED,
    "event_app_mention_grid.json": Verdict.ANSWERED,
    "event_message_im.json": Verdict.ANSWERED,
    "event_message_im_file_share.json": Verdict.ANSWERED,
    "event_message_im_edited.json": Verdict.IGNORED,
    "event_message_im_bot_message.json": Verdict.IGNORED,
    "event_message_im_changed.json": Verdict.IGNORED,
    "event_message_im_deleted.json": Verdict.IGNORED,
}
TEAMS = {
    "message_personal.json": Verdict.ANSWERED,
    "message_group_chat_mention.json": Verdict.ANSWERED,
    "message_channel_mention.json": Verdict.ANSWERED,
    "message_channel_thread_reply.json": Verdict.ANSWERED,
    "message_group_chat_no_text_for_us.json": Verdict.IGNORED,
    "conversation_update_bot_added.json": Verdict.IGNORED,
    "invoke_adaptive_card_action.json": Verdict.APPROVED,
    "message_action_submit.json": Verdict.APPROVED,
}
_unique = itertools.count(1)


def load(platform: str, name: str, **values: str) -> dict[str, Any]:
    raw = (PAYLOADS / platform / name).read_text()
    for key, value in values.items():
        raw = raw.replace("{{" + key + "}}", value)
    payload: dict[str, Any] = json.loads(raw)
    return payload


def test_every_corpus_file_has_a_verdict_and_a_documentation_line() -> None:
    readme = (PAYLOADS / "README.md").read_text()
    for platform, verdicts in (("slack", SLACK), ("teams", TEAMS)):
        files = {p.name for p in (PAYLOADS / platform).glob("*.json") if not p.name.startswith("socket_")}
        assert files == set(verdicts), platform
        for name in files:
            line = next((row for row in readme.splitlines() if f"`{platform}/{name}`" in row), "")
            assert "https://" in line, f"{platform}/{name} names no documentation page in README.md"


# -- Slack over HTTP -----------------------------------------------------------------------------------


def slack_values() -> dict[str, str]:
    n = next(_unique)
    return {"EVENT_ID": f"EvCORPUS{n:06d}", "TS": f"1700000{n:03d}.000100"}


async def send_slack(bot: SlackBot, payload: dict[str, Any]) -> int:
    if payload.get("type") == "block_actions":
        body = urlencode({"payload": json.dumps(payload)})
        return (await bot.send_raw(body, "application/x-www-form-urlencoded")).status
    return (await bot.send_json(payload)).status


@pytest.mark.parametrize("name", sorted(SLACK))
async def test_slack_payload(
    name: str,
    slack_bots: MakeSlackBot,
    fake_slack: FakeSlack,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    if "grid" in name:
        fake_slack.enterprise_id = "E1"  # this deployment's workspace belongs to the Grid org E1
    bot = await slack_bots(sqlite_database)
    verdict = SLACK[name]
    if verdict is Verdict.REFUSED:
        card = await post_card(bot, fake_openai)
        payload = load(
            "slack", name, APPROVAL_ID=card.approval_id, CHANNEL=card.channel, CARD_TS=card.ts, THREAD_TS=card.thread
        )
        assert await send_slack(bot, payload) == 200
        [note] = await bot.slack.wait_for("chat.postEphemeral")
        assert note.args["user"] == payload["user"]["id"] and "not allowed" in note.args["text"].lower()
        stored = await bot.runtime.store.get_approval(card.approval_id)
        assert stored is not None and stored.status is ApprovalStatus.PENDING
        assert bot.slack.calls_to("chat.update") == []
        return
    if verdict in (Verdict.APPROVED, Verdict.CANCELLED):
        card = await post_card(bot, fake_openai)
        posts = len(bot.slack.calls_to("chat.postMessage"))
        payload = load(
            "slack", name, APPROVAL_ID=card.approval_id, CHANNEL=card.channel, CARD_TS=card.ts, THREAD_TS=card.thread
        )
        assert await send_slack(bot, payload) == 200
        [update] = await bot.slack.wait_for("chat.update")
        assert (update.args["channel"], update.args["ts"]) == (card.channel, card.ts)
        assert "actions" not in json.dumps(update.args["blocks"])
        stored = await bot.runtime.store.get_approval(card.approval_id)
        assert stored is not None
        if verdict is Verdict.APPROVED:
            assert stored.status is ApprovalStatus.DONE
            assert await requests_with_key(sqlite_database, card.approval_id) == 1
        else:
            assert stored.status is ApprovalStatus.CANCELLED
            assert await requests_with_key(sqlite_database, card.approval_id) == 0
        await bot.slack.wait_for("chat.postMessage", posts + 1)  # the follow-up in the thread
        return
    fake_openai.default = lambda _: text("corpus answer")
    payload = load("slack", name, **slack_values())
    assert await send_slack(bot, payload) == 200
    if verdict is Verdict.ANSWERED:
        [reply] = await bot.slack.wait_for("chat.postMessage")
        event = payload["event"]
        assert reply.args["channel"] == event["channel"] and "corpus answer" in json.dumps(reply.args["blocks"])
        if event.get("thread_ts") or event["type"] == "app_mention":
            assert reply.args["thread_ts"] == event.get("thread_ts", event["ts"])
        assert fake_openai.requests and "corpus answer" not in fake_openai.requests[0]["messages"][-1]["content"]
    else:
        await eventually(lambda: "ignored a Slack" in caplog.text)
        assert bot.slack.calls_to("chat.postMessage") == [] and fake_openai.requests == []


async def test_a_signed_click_with_enterprise_null_decides_the_card_and_runs_the_tool_once(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    """The click every non-Grid workspace sends: `"enterprise": null`, `"is_enterprise_install": false`."""
    bot = await slack_bots(database)
    card = await post_card(bot, fake_openai)
    payload = load(
        "slack",
        "block_actions_workspace.json",
        APPROVAL_ID=card.approval_id,
        CHANNEL=card.channel,
        CARD_TS=card.ts,
        THREAD_TS=card.thread,
    )
    assert payload["enterprise"] is None and payload["is_enterprise_install"] is False
    assert await send_slack(bot, payload) == 200
    [update] = await bot.slack.wait_for("chat.update")
    assert "Approved by <@UMANAGER>" in json.dumps(update.args["blocks"])
    assert await requests_with_key(database, card.approval_id) == 1


# -- Slack over Socket Mode ------------------------------------------------------------------------------


async def test_socket_mode_envelopes_are_acknowledged_answered_and_decided(
    slack_bots: MakeSlackBot,
    fake_slack: FakeSlack,
    fake_socket_mode: FakeSocketMode,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
) -> None:
    """Both envelope kinds through the real SocketModeClient, connected to a loopback WebSocket."""
    fake_slack.socket_url = fake_socket_mode.url
    bot = await slack_bots(sqlite_database, slack_signing_secret=None, slack_app_token=APP_TOKEN)
    fake_openai.default = schedule_then_report
    asked = load("slack", "socket_events_api_app_mention.json", ENVELOPE_ID="env-1", **slack_values())
    await fake_socket_mode.send(asked)
    assert await fake_socket_mode.ack_for("env-1") == {"envelope_id": "env-1"}
    card = await posted_card(bot, asked["payload"]["event"]["ts"])
    assert card.channel == asked["payload"]["event"]["channel"]

    clicked = load(
        "slack",
        "socket_interactive_block_actions.json",
        ENVELOPE_ID="env-2",
        APPROVAL_ID=card.approval_id,
        CHANNEL=card.channel,
        CARD_TS=card.ts,
        THREAD_TS=card.thread,
    )
    await fake_socket_mode.send(clicked)
    await fake_socket_mode.ack_for("env-2")
    [update] = await bot.slack.wait_for("chat.update")
    assert update.args["ts"] == card.ts and "Approved by <@UMANAGER>" in json.dumps(update.args["blocks"])
    assert await requests_with_key(sqlite_database, card.approval_id) == 1


# -- Teams ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TEAMS))
async def test_teams_payload(name: str, start_teams: StartTeams, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rig = await start_teams()
    verdict = TEAMS[name]
    values = {"SERVICE_URL": rig.connector.service_url, "ACTIVITY_ID": f"17000000{next(_unique):05d}"}
    if verdict is Verdict.APPROVED:
        approval_id, posted = await ask(rig)
        values |= {"APPROVAL_ID": approval_id, "CARD_ID": posted.returned_id, "CONVERSATION_ID": posted.conversation_id}
        status, body = await rig.post(load("teams", name, **values))
        assert status == 200
        if body is not None:  # Action.Execute answers with the decided card for the clicker
            assert body["type"] == CARD and "actions" not in body["value"]
        [update] = await rig.connector.wait_for(rig.connector.updates)
        assert update.activity_id == posted.returned_id and "actions" not in update.cards[0]
        stored = await rig.harness.store.get_approval(approval_id)
        assert stored is not None and stored.status is ApprovalStatus.DONE
        assert await requests_with_key(rig.harness.db, approval_id) == 1
        return
    rig.harness.fake.default = lambda _: text("corpus answer")
    payload = load("teams", name, **values)
    status, _ = await rig.post(payload)
    assert status == 200
    if verdict is Verdict.ANSWERED:
        [reply] = await rig.connector.wait_for(rig.connector.messages)
        assert reply.body["text"] == "corpus answer"
        assert reply.conversation_id == payload["conversation"]["id"]
        asked = rig.harness.fake.requests[0]["messages"][-1]["content"]
        assert asked.endswith("what is open at P-1001?") and "<at>" not in asked
    else:
        await eventually(lambda: "ignored a Teams" in caplog.text)
        assert rig.connector.messages() == [] and rig.harness.fake.requests == []


# -- Fuzz: documented shapes with optional parts nulled or removed are never a 5xx -------------------------

FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = []
    items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths(value, (*prefix, key)))
    return found


def mutate(payload: dict[str, Any], picks: list[tuple[int, bool]]) -> dict[str, Any]:
    """A copy with some fields (any depth) set to null or removed; `picks` are (path index, remove?)."""
    out = copy.deepcopy(payload)
    for index, remove in picks:
        every = paths(out)
        if not every:
            break
        *parents, last = every[index % len(every)]
        node: Any = out
        for part in parents:
            node = node[part]
        if remove and isinstance(node, dict):
            del node[last]
        else:
            node[last] = None
    return out


picks = st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.booleans()), min_size=1, max_size=4)


@pytest.fixture
async def slack_bot(slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI) -> SlackBot:
    fake_openai.default = lambda _: text("fuzzed answer")
    return await slack_bots(sqlite_database)


@pytest.fixture
async def teams_rig(start_teams: StartTeams) -> TeamsRig:
    rig = await start_teams()
    rig.harness.fake.default = lambda _: text("fuzzed answer")
    return rig


SLACK_FILES = sorted(p.name for p in (PAYLOADS / "slack").glob("*.json"))


@pytest.mark.parametrize("name", SLACK_FILES)
@FUZZ
@given(chosen=picks)
async def test_slack_corpus_with_fields_nulled_or_removed_is_never_a_5xx(
    name: str, slack_bot: SlackBot, chosen: list[tuple[int, bool]]
) -> None:
    values = {"APPROVAL_ID": "no-such-approval", "CHANNEL": "C1", "CARD_TS": "1.1", "THREAD_TS": "1.0"}
    original = load("slack", name, **values, **slack_values())
    if name.startswith("socket_"):
        original = original["payload"]  # over HTTP Slack sends what the envelope carries
    payload = mutate(original, chosen)
    if original.get("type") == "block_actions":
        sent = await slack_bot.send_raw(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )
    else:
        sent = await slack_bot.send_json(payload)
    assert sent.status < 500, (sent, payload)


@pytest.mark.parametrize("name", sorted(TEAMS))
@FUZZ
@given(chosen=picks)
async def test_teams_corpus_with_fields_nulled_or_removed_is_never_a_5xx(
    name: str, teams_rig: TeamsRig, chosen: list[tuple[int, bool]]
) -> None:
    values = {
        "SERVICE_URL": teams_rig.connector.service_url,
        "ACTIVITY_ID": f"17000000{next(_unique):05d}",
        "APPROVAL_ID": "no-such-approval",
        "CARD_ID": "1",
        "CONVERSATION_ID": "a:1personal-staff",
    }
    payload = mutate(load("teams", name, **values), chosen)
    status, _ = await teams_rig.post(payload)
    assert status < 500, (status, payload)
