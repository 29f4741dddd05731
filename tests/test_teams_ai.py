"""Teams as an AI app through the real CloudAdapter path and the fake Bot Connector: streamed answers in personal
chats (informative updates, streaming typing activities, the final message), one message elsewhere, the feedback
loop, suggested next steps by role, and times in the reader's time zone. The connector enforces the documented
streaming rules (personal chats only, sequences from 1, the final message without one) and records violations."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

from tests.support.cards import ask
from tests.support.fake_connector import ConnectorCall, StartTeams, message
from tests.support.fake_openai import call, calls, text
from tests.support.scripts import SCHEDULE
from tests.support.waiting import eventually

ANSWER = (
    "P-1001 is a 2-bedroom house at 1208 S Congress Ave, available now for $2,400 a month. It has one open "
    "maintenance request, and the building was renovated recently."
)


def stream_of(call_: ConnectorCall) -> dict[str, Any] | None:
    return next((e for e in call_.body.get("entities") or [] if e.get("type") == "streaminfo"), None)


async def test_a_personal_chat_answer_streams_progress_then_text_then_a_final_message(start_teams: StartTeams) -> None:
    rig = await start_teams(teams_stream_interval=0.5)
    fake = rig.harness.fake
    fake.token_delay = 0.05  # ~20 chunks over a second: more than one update
    fake.push(calls(call("get_property", {"property_id": "P-1001"})), text(ANSWER))
    assert (await rig.post(message(rig.connector, "tell me about P-1001")))[0] == 200
    # The answer offers next steps, which Teams shows only on the latest message and never on one with attachments:
    # the words and the card end the stream (where it began), and a short message after it carries the steps.
    [final, steps] = await rig.connector.wait_for(rig.connector.messages, 2, within=15)

    updates = [c for c in rig.connector.typing() if stream_of(c) is not None]
    kinds = [stream_of(c)["streamType"] for c in updates]  # type: ignore[index]
    assert kinds[0] == "informative" and updates[0].body["text"] == "Looking up P-1001…"
    assert "streaming" in kinds and kinds.index("streaming") > 0
    sequences = [stream_of(c)["streamSequence"] for c in updates]  # type: ignore[index]
    assert sequences == list(range(1, len(updates) + 1))
    streamed = [c.body["text"] for c in updates if stream_of(c)["streamType"] == "streaming"]  # type: ignore[index]
    assert streamed[-1] == ANSWER or ANSWER.startswith(streamed[-1])

    info = stream_of(final)
    assert info is not None and info["streamType"] == "final" and "streamSequence" not in info
    stream_id = updates[0].returned_id
    assert info["streamId"] == stream_id and all(stream_of(c)["streamId"] == stream_id for c in updates[1:])  # type: ignore[index]
    assert final.body["text"].replace(" [1]", "") == ANSWER  # the model's words, with the citation marker
    assert "1208 S Congress Ave" in json.dumps(final.cards) and "suggestedActions" not in final.body
    assert stream_of(steps) is None and not steps.body.get("attachments")
    assert [a["title"] for a in steps.body["suggestedActions"]["actions"]][:1] == ["List its maintenance requests"]
    assert rig.connector.streams[stream_id].final is not None
    assert rig.connector.violations == [] and fake.violations == []


async def test_a_group_chat_gets_whole_messages_and_no_stream(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.push(calls(call("get_property", {"property_id": "P-1001"})), text(ANSWER))
    body = message(rig.connector, "P-1001?", conversation="19:group@unq.gbl.spaces", conversation_type="groupChat")
    assert (await rig.post(body))[0] == 200
    [_card, reply] = await rig.connector.wait_for(rig.connector.messages, 2)
    assert reply.body["text"].replace(" [1]", "") == ANSWER
    assert all(stream_of(c) is None for c in rig.connector.calls)
    assert rig.connector.streams == {}


async def test_where_teams_refuses_streaming_the_answer_is_one_message_and_it_is_not_asked_again(
    start_teams: StartTeams,
) -> None:
    rig = await start_teams()
    rig.connector.streaming_allowed = False  # 403 ContentStreamNotAllowed
    rig.harness.fake.push(text("First answer."), text("Second answer."))
    await rig.post(message(rig.connector, "one"))
    await rig.connector.wait_for(rig.connector.messages)
    await rig.post(message(rig.connector, "two"))
    [first, second] = await rig.connector.wait_for(rig.connector.messages, 2)
    assert (first.body["text"], second.body["text"]) == ("First answer.", "Second answer.")
    assert stream_of(first) is None and stream_of(second) is None
    assert rig.connector.refused == 1  # asked once; the second answer went straight to one message
    assert rig.connector.streams == {}


async def test_next_steps_are_offered_only_as_the_role_permits(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.push(
        calls(call("get_property", {"property_id": "P-1001"})),
        text("Here is P-1001."),
        calls(call("get_property", {"property_id": "P-1001"})),
        text("Here is P-1001."),
    )
    await rig.post(message(rig.connector, "P-1001?", user="aad-staff", name="Sam Staff", conversation="a:staff"))
    [_, staff] = await rig.connector.wait_for(rig.connector.messages, 2)
    await rig.post(message(rig.connector, "P-1001?", user="aad-viewer", name="Vic Viewer", conversation="a:viewer"))
    [*_, viewer] = await rig.connector.wait_for(rig.connector.messages, 4)
    offered = staff.body["suggestedActions"]
    assert [(a["type"], a["title"], a["value"]) for a in offered["actions"]] == [
        ("imBack", "List its maintenance requests", "List the maintenance requests for P-1001"),
        ("imBack", "Schedule maintenance…", "Schedule maintenance at P-1001"),
    ]
    assert offered["to"] == ["29:aad-staff"]
    assert [a["title"] for a in viewer.body["suggestedActions"]["actions"]] == ["List its maintenance requests"]


async def test_feedback_from_the_feedback_loop_is_audited_and_counted_by_tool(start_teams: StartTeams) -> None:
    audit: list[Any] = []

    class Trail:
        async def record(self, event: Any) -> None:
            audit.append(event)

    rig = await start_teams(audit=Trail())
    labels = {"tool": "get_property", "way": "good"}
    before = REGISTRY.get_sample_value("propbot_feedback_total", labels) or 0.0
    rig.harness.fake.push(calls(call("get_property", {"property_id": "P-1001"})), text("Here is P-1001."))
    await rig.post(message(rig.connector, "P-1001?", conversation_type="groupChat", conversation="19:g@unq"))
    [_card, answer] = await rig.connector.wait_for(rig.connector.messages, 2)
    await eventually(lambda: any(e.kind == "tool_call" for e in audit))
    invoke = message(
        rig.connector, "", conversation_type="groupChat", conversation="19:g@unq", reply_to=answer.returned_id
    )
    del invoke["text"]
    feedback = {"reaction": "like", "feedback": json.dumps({"feedbackText": "spot on"})}
    invoke.update(type="invoke", name="message/submitAction", value={"actionName": "feedback", "actionValue": feedback})
    status, _ = await rig.post(invoke)
    assert status == 200
    await eventually(lambda: any(e.kind == "feedback" for e in audit))
    [entry] = [e for e in audit if e.kind == "feedback"]
    assert (entry.user, entry.outcome, entry.tool, entry.detail) == (
        "teams:tenant-1:aad-manager",
        "good",
        "get_property",
        "spot on",
    )
    assert REGISTRY.get_sample_value("propbot_feedback_total", labels) == before + 1


async def test_card_times_are_in_the_requesters_time_zone_when_teams_sends_one(start_teams: StartTeams) -> None:
    rig = await start_teams()
    _, posted = await ask(rig)
    assert "UTC" in json.dumps(posted.cards[0]["body"])  # no time zone sent: UTC, labelled

    rig.harness.fake.push(calls(call("schedule_maintenance", SCHEDULE)))
    body = message(rig.connector, "plumber at P-1001", user="aad-staff", name="Sam Staff", conversation="a:tz")
    body["localTimezone"] = "America/New_York"
    body["entities"] = [{"type": "clientInfo", "locale": "en-US", "timezone": "America/New_York"}]
    await rig.post(body)
    card = await rig.connector.wait_for(lambda: [m for m in rig.connector.messages() if m.conversation_id == "a:tz"])
    shown = json.dumps(card[0].cards[0]["body"])
    assert "(America/New_York)" in shown and "UTC" not in shown


async def test_feedback_invokes_with_missing_or_null_fields_are_answered_and_record_nothing(
    start_teams: StartTeams,
) -> None:
    audit: list[Any] = []

    class Trail:
        async def record(self, event: Any) -> None:
            audit.append(event)

    rig = await start_teams(audit=Trail())
    values: list[Any] = [
        None,
        {},
        {"actionName": "feedback"},
        {"actionName": "feedback", "actionValue": None},
        {"actionName": "feedback", "actionValue": {"reaction": None, "feedback": None}},
        {"actionName": "other", "actionValue": {"reaction": "like"}},
    ]
    for value in values:
        invoke = message(rig.connector, "", reply_to=None)
        del invoke["text"]
        invoke.update(type="invoke", name="message/submitAction", value=value)
        status, _ = await rig.post(invoke)
        assert status == 200, value
    # A well-formed one without a comment or a known message still counts, as "none".
    invoke = message(rig.connector, "")
    del invoke["text"]
    invoke.update(
        type="invoke",
        name="message/submitAction",
        value={"actionName": "feedback", "actionValue": {"reaction": "dislike"}},
    )
    assert (await rig.post(invoke))[0] == 200
    await eventually(lambda: any(e.kind == "feedback" for e in audit))
    [entry] = [e for e in audit if e.kind == "feedback"]
    assert (entry.outcome, entry.tool, entry.detail) == ("bad", "none", "")


async def test_next_steps_beside_a_card_come_on_the_words_after_it_in_channels_and_group_chats(
    start_teams: StartTeams,
) -> None:
    # Teams shows no suggested actions on a message with attachments, and in a channel shows such a message's
    # text as "Invalid message" (Microsoft 365 Agents Playground): the card first, then the words with the steps.
    rig = await start_teams()
    places = [
        ("19:team-channel@thread.tacv2;messageid=77", "channel", True),
        ("19:g2@unq.gbl.spaces", "groupChat", False),
    ]
    for conversation, kind, mention in places:
        rig.harness.fake.push(calls(call("get_property", {"property_id": "P-1001"})), text("Here is P-1001."))
        body = message(rig.connector, "P-1001?", conversation=conversation, conversation_type=kind, mention=mention)
        assert (await rig.post(body))[0] == 200

        def here(c: str = conversation) -> list[ConnectorCall]:
            return [m for m in rig.connector.messages() if m.conversation_id == c]

        sent = await rig.connector.wait_for(here, 2)
        card, words = sent
        assert card.cards and "suggestedActions" not in card.body and not card.body.get("text")
        assert words.body["text"].replace(" [1]", "") == "Here is P-1001." and not words.body.get("attachments")
        assert words.body["suggestedActions"]["actions"][0]["title"] == "List its maintenance requests"
    assert rig.connector.violations == [] and rig.connector.refused == 0


async def test_an_answer_with_a_card_and_no_next_steps_is_one_message(start_teams: StartTeams) -> None:
    rig = await start_teams()
    # A search result's card offers no next step (the steps follow a single property or request).
    rig.harness.fake.push(calls(call("search_properties", {"location": "Austin, TX"})), text("Two houses."))
    assert (await rig.post(message(rig.connector, "houses in Austin", conversation_type="groupChat")))[0] == 200
    [answer] = await rig.connector.wait_for(rig.connector.messages)
    assert answer.cards and answer.body["text"].startswith("Two houses. [1]") and "suggestedActions" not in answer.body


async def test_the_fake_connector_refuses_suggested_actions_beside_attachments(start_teams: StartTeams) -> None:
    # The rule above holds only while the connector enforces it: an activity carrying both is refused, as Teams
    # would fail to show it.
    rig = await start_teams()
    both = {
        "type": "message",
        "text": "Here is P-1001.",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {}}],
        "suggestedActions": {"actions": [{"type": "imBack", "title": "More", "value": "more"}]},
    }
    async with aiohttp.ClientSession() as session:
        url = f"{rig.connector.service_url}v3/conversations/a:x/activities"
        async with session.post(url, json=both) as refused:
            assert refused.status == 400
        async with session.post(url, json={**both, "attachments": []}) as accepted:
            assert accepted.status == 200
    assert rig.connector.violations == ["suggested actions beside 1 attachment(s)"]


async def test_feedback_without_reply_to_id_is_about_the_conversation_s_latest_answer(start_teams: StartTeams) -> None:
    # Microsoft 365 Agents Playground sends the feedback invoke with no replyToId.
    audit: list[Any] = []

    class Trail:
        async def record(self, event: Any) -> None:
            audit.append(event)

    rig = await start_teams(audit=Trail())
    rig.harness.fake.push(
        calls(call("search_properties", {"location": "Austin, TX"})),
        text("Several homes."),
        calls(call("get_property", {"property_id": "P-1001"})),
        text("Here is P-1001."),
    )
    where: dict[str, Any] = {"conversation_type": "groupChat", "conversation": "19:fb@unq"}
    await rig.post(message(rig.connector, "houses in Austin?", **where))
    await rig.connector.wait_for(rig.connector.messages)
    await rig.post(message(rig.connector, "P-1001?", **where))
    await rig.connector.wait_for(rig.connector.messages, 3)
    await eventually(lambda: sum(e.kind == "tool_call" for e in audit) == 2)
    invoke = message(rig.connector, "", **where)
    del invoke["text"]
    action = {"actionName": "feedback", "actionValue": {"reaction": "dislike", "feedback": "{}"}}
    invoke.update(type="invoke", name="message/submitAction", value=action)
    assert "replyToId" not in invoke
    latest = "answer:latest:teams:tenant-1:19:fb@unq"
    await eventually(lambda: _noted(rig, latest, "get_property"))  # written beside the answer's send
    assert (await rig.post(invoke))[0] == 200
    await eventually(lambda: any(e.kind == "feedback" for e in audit))
    [entry] = [e for e in audit if e.kind == "feedback"]
    assert (entry.outcome, entry.tool) == ("bad", "get_property")  # the latest answer's, not the search's


async def _noted(rig: Any, key: str, value: str) -> bool:
    found: str | None = await rig.harness.store.get_note(key)
    return found == value
