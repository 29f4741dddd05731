"""Every payload shape the platforms document, through the real routes: handled (answered, decided, or
ignored on purpose with a log line saying why) or rejected with a 4xx naming the reason, file by file.

The files are in tests/payloads/ (README there names the documentation page each follows); the verdict of
each is in tests/support/corpus.py. Placeholders such as {{APPROVAL_ID}} are filled in per test, so a
click really decides an approval the test created.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.types import ApprovalStatus
from tests.support.cards import post_card, posted_card
from tests.support.corpus import PAYLOADS, SLACK, SOCKET, TEAMS, load, unique
from tests.support.corpus_routes import SlackRoute, TeamsRoute
from tests.support.fake_connector import StartTeams
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import APP_TOKEN, FakeSlack, MakeSlackBot
from tests.support.fake_socket_mode import FakeSocketMode
from tests.support.harness import PERMISSIONS_YAML
from tests.support.scripts import requests_with_key, schedule_then_report
from tools.db import Database


def test_every_corpus_file_has_a_verdict_and_a_documentation_line() -> None:
    readme = (PAYLOADS / "README.md").read_text()
    for platform, expected in (("slack", SLACK | SOCKET), ("teams", TEAMS)):
        files = {p.name for p in (PAYLOADS / platform).glob("*.json")}
        assert files == set(expected), platform
        for name in files:
            line = next((row for row in readme.splitlines() if f"`{platform}/{name}`" in row), "")
            assert re.search(r"https://(docs\.slack\.dev|api\.slack\.com|learn\.microsoft\.com|github\.com)/", line), (
                f"{platform}/{name} names no documentation page in README.md"
            )
            verdict = expected[name].verdict.value
            assert line.rstrip(" |").split("|")[-1].strip().startswith(verdict), f"{platform}/{name}: not {verdict}"


# -- Slack over HTTP -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SLACK))
async def test_slack_payload(
    name: str,
    slack_bots: MakeSlackBot,
    fake_slack: FakeSlack,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if "grid" in name:
        fake_slack.enterprise_id = "E1"  # this deployment's workspace belongs to the Grid org E1
    route = SlackRoute(await slack_bots(sqlite_database), fake_openai, sqlite_database, caplog, redis_url)
    case = await route.prepare(name)
    await route.judge(case, case.payload, await route.send(case, case.payload))


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
    assert (await bot.send_click(payload)).status == 200
    [update] = await bot.slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (card.channel, card.ts)
    assert "actions" not in json.dumps(update.args["blocks"])
    assert "Approved by <@UMANAGER>" in json.dumps(update.args["blocks"])
    assert await requests_with_key(database, card.approval_id) == 1


PARTNER_MANAGER = PERMISSIONS_YAML.replace("users:\n", 'users:\n  "slack:TPARTNER:UEXTERNAL": manager\n')


@pytest.mark.parametrize("name", ["block_actions_slack_connect.json", "event_app_mention_slack_connect.json"])
async def test_a_slack_connect_partner_named_in_slack_allowed_teams_is_served(
    name: str,
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same shared-channel files, once the partner is allowed and its user holds a role: the shape is
    accepted all the way, so the refusal in the corpus verdicts is the allow-list's doing, nothing else."""
    bot = await slack_bots(sqlite_database, permissions=PARTNER_MANAGER, slack_allowed_teams="TPARTNER")
    route = SlackRoute(bot, fake_openai, sqlite_database, caplog, redis_url)
    case = await route.prepare(name)
    sent = await route.send(case, case.payload)
    assert sent.status == 200
    if case.card is not None:
        [update] = await bot.slack.wait_for("chat.update")
        assert update.args["ts"] == case.card.ts and "actions" not in json.dumps(update.args["blocks"])
        stored = await bot.runtime.store.get_approval(case.card.approval_id)
        assert stored is not None and stored.status is ApprovalStatus.DONE
        assert stored.decided_by == "slack:TPARTNER:UEXTERNAL"
        assert await requests_with_key(sqlite_database, case.card.approval_id) == 1
    else:
        [reply] = await bot.slack.wait_for("chat.postMessage", where=lambda c: "corpus answer" in json.dumps(c.args))
        assert reply.args["channel"] == case.payload["event"]["channel"]


# -- Slack over Socket Mode ------------------------------------------------------------------------------

BROKEN_ENVELOPES: list[dict[str, Any]] = [
    {"envelope_id": "env-broken-1", "type": "events_api", "payload": None, "accepts_response_payload": False},
    {"envelope_id": "env-broken-2", "type": "events_api", "payload": {"type": "event_callback", "event": "x"}},
    {"envelope_id": "env-broken-3", "type": "interactive", "payload": {"type": "block_actions", "actions": None}},
    {"type": "events_api", "payload": {"type": "event_callback"}},  # no envelope id
]


async def test_socket_mode_envelopes_are_acknowledged_answered_and_decided(
    slack_bots: MakeSlackBot,
    fake_slack: FakeSlack,
    fake_socket_mode: FakeSocketMode,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
) -> None:
    """Both envelope kinds through the real SocketModeClient, connected to a loopback WebSocket, after
    envelopes Bolt cannot route: those are logged and left unacknowledged, and the connection keeps serving."""
    fake_slack.socket_url = fake_socket_mode.url
    bot = await slack_bots(sqlite_database, slack_signing_secret=None, slack_app_token=APP_TOKEN)
    for broken in BROKEN_ENVELOPES:
        await fake_socket_mode.send(broken)

    fake_openai.default = schedule_then_report
    n = unique()
    asked = load(
        "slack", "socket_events_api_app_mention.json", ENVELOPE_ID="env-1", EVENT_ID=f"EvS{n}", TS=f"1700{n:06d}.1"
    )
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
    # Slack redelivers what was not acknowledged; Bolt cannot use these, so propbot leaves them to that.
    assert {a.get("envelope_id") for a in fake_socket_mode.acks} == {"env-1", "env-2"}


# -- Teams ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TEAMS))
async def test_teams_payload(
    name: str, start_teams: StartTeams, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    route = TeamsRoute(await start_teams(), caplog, redis_url)
    case = await route.prepare(name)
    await route.judge(case, case.payload, await route.send(case.payload))
