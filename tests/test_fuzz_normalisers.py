"""Property-based checks (hypothesis) of the Slack and Teams normalisers: arbitrary payloads never raise
an unhandled exception, and a payload that is not a usable message or click changes nothing: no
conversation state in Redis, no approval, no message posted at the fake Slack / Bot Connector, no model
call. The pure functions are fuzzed directly, and whole bodies go through the real HTTP routes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters.slack import blocks as slack_blocks
from adapters.slack.identity import strip_mention
from adapters.teams.activity import conversation_of, principal_of, strip_bot_mention, tenant_of, well_formed
from tests.support.fake_connector import BOT_ID, StartTeams, TeamsRig
from tests.support.fake_openai import text
from tests.support.fake_slack import MakeSlackBot, SlackBot, event_body
from tests.support.state import could_be_a_message, could_be_teams_input, deserialize, queue_ready, redis_keys
from tests.support.waiting import eventually
from tools.db import Database

FUZZ = settings(
    max_examples=60,
    deadline=None,
    # The served app is built once per test and shared by its examples, which is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def maybe(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts holding any subset of `keys`, each with a value from its strategy."""
    return st.fixed_dictionaries({}, optional=keys)


# -- Slack ------------------------------------------------------------------------------------------

slack_event = maybe(
    {
        "type": st.sampled_from(["app_mention", "message", "reaction_added"]) | json_values,
        "channel_type": st.sampled_from(["im", "channel"]) | json_values,
        "user": st.sampled_from(["UMANAGER", "UBOT"]) | json_values,
        "channel": st.sampled_from(["C1", "D1"]) | json_values,
        "ts": st.just("1600000000.000100") | json_values,
        "text": st.sampled_from(["<@UBOT> hi", "<@UBOT>", ""]) | json_values,
        "subtype": json_values,
        "bot_id": json_values,
        "edited": json_values,
        "thread_ts": json_values,
        "team": json_values,
    }
)
slack_action = maybe(
    {
        "action_id": st.sampled_from([slack_blocks.APPROVE_ACTION, slack_blocks.CANCEL_ACTION]) | json_values,
        "value": st.text(max_size=120) | json_values,
        "type": st.just("button") | json_values,
        "block_id": json_values,
    }
)
slack_click = maybe(
    {
        "type": st.sampled_from(["block_actions", "view_submission", "shortcut"]) | json_values,
        "team": maybe({"id": st.sampled_from(["T1", "T2"]) | json_values}) | json_values,
        "user": maybe({"id": st.sampled_from(["UMANAGER", "USTAFF"]) | json_values, "team_id": json_values})
        | json_values,
        "channel": maybe({"id": st.just("C1") | json_values}) | json_values,
        "container": maybe({"channel_id": json_values, "message_ts": json_values}) | json_values,
        "message": maybe({"ts": json_values, "thread_ts": json_values}) | json_values,
        "actions": st.lists(slack_action, max_size=3) | json_values,
        "api_app_id": json_values,
    }
)


@given(text_=st.text(max_size=200), bot_user=st.none() | st.text(max_size=12))
def test_strip_mention_never_raises_and_removes_our_mention(text_: str, bot_user: str | None) -> None:
    out = strip_mention(text_, bot_user)
    assert out == out.strip()
    if bot_user and "<" not in text_ and ">" not in text_ and "&" not in text_:
        assert len(out) <= len(text_)


@pytest.fixture
async def slack_bot(slack_bots: MakeSlackBot, sqlite_database: Database, redis_url: str) -> SlackBot:
    bot = await slack_bots(sqlite_database)
    await queue_ready(redis_url)
    return bot


def assert_nothing_changed(bot: SlackBot, redis_url: str, keys_before: set[str]) -> None:
    slack = bot.slack
    posted = [c.method for c in slack.calls if c.method in ("chat.postMessage", "chat.update", "reactions.add")]
    assert posted == []
    assert redis_keys(redis_url) == keys_before


@FUZZ
@given(event=slack_event)
async def test_slack_events_with_arbitrary_fields_change_nothing(
    slack_bot: SlackBot, redis_url: str, event: dict[str, Any]
) -> None:
    assume(not could_be_a_message(event))
    before = redis_keys(redis_url)
    sent = await slack_bot.send_event(event)
    assert sent.status < 500, sent
    assert slack_bot.dispatcher.tasks.in_flight == 0
    assert_nothing_changed(slack_bot, redis_url, before)


@FUZZ
@given(body=json_values)
async def test_slack_arbitrary_json_bodies_are_refused_cleanly(slack_bot: SlackBot, redis_url: str, body: Any) -> None:
    before = redis_keys(redis_url)
    sent = await slack_bot.send_raw(json.dumps(body), "application/json")
    assert sent.status < 500, sent
    envelope = await slack_bot.send_json({**event_body({}), "event": body})
    assert envelope.status < 500, envelope
    assert_nothing_changed(slack_bot, redis_url, before)


@FUZZ
@given(click=slack_click)
async def test_slack_clicks_with_arbitrary_fields_change_nothing(
    slack_bot: SlackBot, redis_url: str, click: dict[str, Any]
) -> None:
    before = redis_keys(redis_url)
    sent = await slack_bot.send_raw(urlencode({"payload": json.dumps(click)}), "application/x-www-form-urlencoded")
    assert sent.status < 500, sent
    await eventually(lambda: slack_bot.dispatcher.tasks.in_flight == 0, within=5)
    assert_nothing_changed(slack_bot, redis_url, before)


# -- Teams ------------------------------------------------------------------------------------------

teams_entity = maybe(
    {
        "type": st.just("mention") | json_values,
        "text": st.just("<at>propbot</at>") | json_values,
        "mentioned": maybe({"id": st.just(BOT_ID) | json_values, "name": json_values}) | json_values,
    }
)


def teams_activity(service_url: str) -> st.SearchStrategy[dict[str, Any]]:
    return maybe(
        {
            "type": st.sampled_from(["message", "invoke", "conversationUpdate", "typing"]) | json_values,
            "id": st.text(max_size=10) | json_values,
            "name": st.just("adaptiveCard/action") | json_values,
            "channelId": st.just("msteams") | json_values,
            "serviceUrl": st.just(service_url) | json_values,
            "from": maybe({"id": st.just("29:aad-manager") | json_values, "aadObjectId": json_values}) | json_values,
            "recipient": maybe({"id": st.just(BOT_ID) | json_values}) | json_values,
            "conversation": maybe(
                {
                    "id": st.sampled_from(["a:chat-1", "19:c@thread.skype;messageid=1"]) | json_values,
                    "conversationType": st.sampled_from(["personal", "channel"]) | json_values,
                    "tenantId": json_values,
                }
            )
            | json_values,
            "channelData": maybe({"tenant": maybe({"id": json_values}) | json_values}) | json_values,
            "text": json_values,
            "entities": st.lists(teams_entity, max_size=3) | json_values,
            "value": maybe(
                {
                    "action": maybe({"verb": json_values, "data": maybe({"approval_id": json_values}) | json_values})
                    | json_values,
                    "approval_id": json_values,
                }
            )
            | json_values,
            "replyToId": json_values,
        }
    )


def skeleton(service_url: str) -> st.SearchStrategy[dict[str, Any]]:
    """The parts an activity needs to get past the route's shape check, with arbitrary values in them."""
    return st.fixed_dictionaries(
        {
            "type": st.sampled_from(["message", "invoke"]) | st.text(min_size=1, max_size=10),
            "serviceUrl": st.just(service_url),
            "conversation": st.fixed_dictionaries(
                {"id": st.sampled_from(["a:chat-1", "19:c@thread.skype;messageid=1"]) | st.text(min_size=1)},
                optional={"conversationType": json_values, "tenantId": json_values},
            ),
            "from": st.fixed_dictionaries(
                {"id": st.text(min_size=1, max_size=10)}, optional={"aadObjectId": json_values}
            ),
        }
    )


@settings(max_examples=400, deadline=None)  # pure and cheap: worth many more examples
@given(required=skeleton("http://127.0.0.1:9/"), extra=teams_activity("http://127.0.0.1:9/"))
def test_teams_normalisers_never_raise_on_a_well_formed_activity(
    required: dict[str, Any], extra: dict[str, Any]
) -> None:
    body = {**extra, **required}
    activity = deserialize(body)
    assume(well_formed(activity))
    assert activity is not None
    assert isinstance(strip_bot_mention(activity), str)
    assert isinstance(tenant_of(activity), str) and principal_of(activity).startswith("teams:")
    conversation = conversation_of(activity)
    assert conversation.platform == "teams" and ";messageid=" not in conversation.channel.lower()


@pytest.fixture
async def teams_rig(start_teams: StartTeams, redis_url: str) -> TeamsRig:
    rig = await start_teams()
    await queue_ready(redis_url)
    rig.harness.fake.default = lambda _request: text("the model must not be asked")
    return rig


@FUZZ
@given(data=st.data())
async def test_teams_arbitrary_activities_change_nothing(teams_rig: TeamsRig, redis_url: str, data: Any) -> None:
    url = teams_rig.connector.service_url
    shaped = st.builds(lambda extra, required: {**extra, **required}, teams_activity(url), skeleton(url))
    body = data.draw(shaped | teams_activity(url) | json_values)
    if isinstance(body, dict):
        assume(not could_be_teams_input(body))
    before = redis_keys(redis_url)
    status, _ = await teams_rig.post(json.dumps(body))
    # An invoke propbot has no use for is refused with 400 by name, never botbuilder's 501.
    assert status < 500, (status, body)
    assert teams_rig.harness.fake.requests == []
    assert [c for c in teams_rig.connector.calls if c.type == "message" or c.kind == "update"] == []
    assert redis_keys(redis_url) == before
