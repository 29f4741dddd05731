"""The corpus with fields nulled or removed at random, any depth, through the real routes (hypothesis).

A copy that still has every field its file `needs` (tests/support/corpus.py) must get exactly the file's
verdict: a field Slack or Microsoft documents as optional or nullable never decides whether propbot answers,
the way `"enterprise": null` once made every Slack click a 400. A copy that lost a needed field is never a 5xx,
runs no tool twice, leaves a click's approval either decided properly or untouched, and, when it is no
longer a usable message or click, changes nothing at all.

Each file gets a modest number of examples so the suite stays fast; `CORPUS_FUZZ_EXAMPLES=300` searches
harder (a few minutes), which is how the cases in FOUND_* below turned up.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.support.corpus import SLACK, SOCKET, TEAMS, FieldPath, loses_a_need, mutate, without
from tests.support.corpus_routes import SlackRoute, TeamsRoute
from tests.support.fake_connector import StartTeams
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import MakeSlackBot
from tools.db import Database

FUZZ = settings(
    max_examples=int(os.environ.get("CORPUS_FUZZ_EXAMPLES", "20")),
    deadline=None,
    # The same examples every run (a failure found is found again); CORPUS_FUZZ_EXAMPLES searches wider.
    derandomize=True,
    # One served propbot per file, shared by its examples (each makes its own approval and ids).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
picks = st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.booleans()), min_size=1, max_size=3)


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    """One backend is enough here: the shapes are the question, and test_payload_corpus runs both."""
    return sqlite_database


@pytest.fixture
async def slack_route(
    slack_bots: MakeSlackBot,
    sqlite_database: Database,
    fake_openai: FakeOpenAI,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> SlackRoute:
    bot = await slack_bots(sqlite_database)
    if "grid" in request.node.callspec.params["name"]:
        bot.slack.enterprise_id = "E1"  # this deployment's workspace belongs to the Grid org E1
    return SlackRoute(bot, fake_openai, sqlite_database, caplog, redis_url)


@pytest.fixture
async def teams_route(start_teams: StartTeams, redis_url: str, caplog: pytest.LogCaptureFixture) -> TeamsRoute:
    return TeamsRoute(await start_teams(), caplog, redis_url)


@pytest.mark.parametrize("name", sorted(SLACK | SOCKET))
@FUZZ
@given(chosen=picks)
async def test_slack_corpus_with_fields_nulled_or_removed(
    name: str, slack_route: SlackRoute, chosen: list[tuple[int, bool]]
) -> None:
    case = await slack_route.prepare(name)
    payload, changed = mutate(case.payload, chosen)
    lost = loses_a_need(changed, case.expect.needs)
    note(f"changed {changed}; lost a needed field: {lost}")
    sent = await slack_route.send(case, payload)
    await (slack_route.harmless if lost else slack_route.judge)(case, payload, sent)


@pytest.mark.parametrize("name", sorted(TEAMS))
@FUZZ
@given(chosen=picks)
async def test_teams_corpus_with_fields_nulled_or_removed(
    name: str, teams_route: TeamsRoute, chosen: list[tuple[int, bool]]
) -> None:
    case = await teams_route.prepare(name)
    payload, changed = mutate(case.payload, chosen)
    lost = loses_a_need(changed, case.expect.needs)
    note(f"changed {changed}; lost a needed field: {lost}")
    sent: Any = await teams_route.send(payload)
    await (teams_route.harmless if lost else teams_route.judge)(case, payload, sent)


# What the fuzz once found, kept as fixed cases: each takes out fields its file does not need.
FOUND_SLACK: list[tuple[str, list[FieldPath]]] = [
    # An `edited` object without its fields is still an edit.
    ("event_message_im_edited.json", [("event", "edited", "user"), ("event", "edited", "ts")]),
]
FOUND_TEAMS: list[tuple[str, list[FieldPath]]] = [
    # The tenant only in conversation.tenantId, which botbuilder's schema does not map (it expects tenantID).
    ("invoke_adaptive_card_action.json", [("channelData",)]),
    # The same, on a Submit that has no activity id either (the schema makes `id` optional).
    ("message_action_submit.json", [("channelData",), ("id",)]),
]


@pytest.mark.parametrize(("name", "removed"), FOUND_SLACK)
async def test_slack_fields_the_fuzz_found_once_keep_their_verdict(
    name: str, removed: list[FieldPath], slack_route: SlackRoute
) -> None:
    case = await slack_route.prepare(name)
    assert not loses_a_need(removed, case.expect.needs)
    payload = without(case.payload, *removed)
    await slack_route.judge(case, payload, await slack_route.send(case, payload))


@pytest.mark.parametrize(("name", "removed"), FOUND_TEAMS)
async def test_teams_fields_the_fuzz_found_once_keep_their_verdict(
    name: str, removed: list[FieldPath], teams_route: TeamsRoute
) -> None:
    case = await teams_route.prepare(name)
    assert not loses_a_need(removed, case.expect.needs)
    payload = without(case.payload, *removed)
    await teams_route.judge(case, payload, await teams_route.send(payload))


SLACK_CLICKS = sorted(name for name, expect in SLACK.items() if expect.needs and "user.id" in expect.needs)


@pytest.mark.parametrize("name", SLACK_CLICKS)
async def test_a_slack_click_that_names_no_team_decides_nothing(name: str, slack_route: SlackRoute) -> None:
    # The shape the random fuzz seldom reaches: both of the clicker's team fields gone (or null).
    case = await slack_route.prepare(name)
    payload = without(case.payload, ("team",), ("user", "team_id"))
    await slack_route.harmless(case, payload, await slack_route.send(case, payload))
