"""Teams messages through the real HTTP server and botbuilder, answered on a fake Bot Connector."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.fake_connector import TENANT, StartTeams, message
from tests.support.fake_openai import call, calls, last_message, text, unstamped
from tests.support.peek import history_of

ADDRESS = "1208 S Congress Ave"  # P-1001 in the sample data; only the tool knows it


@pytest.mark.parametrize("conversation_type", ["personal", "groupChat"])
async def test_a_message_gets_one_reply_with_the_tools_data(start_teams: StartTeams, conversation_type: str) -> None:
    rig = await start_teams()
    fake = rig.harness.fake
    fake.push(calls(call("get_property", {"property_id": "P-1001"})), text("Here is P-1001."))
    conversation = f"19:{conversation_type}-chat@unq.gbl.spaces"
    body = message(rig.connector, "what about P-1001?", conversation=conversation, conversation_type=conversation_type)
    status, _ = await rig.post(body)
    assert status == 200

    # The answer offers next steps, which Teams shows only on the latest message and never on one with attachments:
    # streamed (a personal chat) the words and card end the stream and the steps follow; else the card, then the words.
    first, second = await rig.connector.wait_for(rig.connector.messages, 2)
    card, reply, steps = (first, first, second) if conversation_type == "personal" else (first, second, second)
    assert reply.kind == "send" and reply.conversation_id == conversation
    assert reply.body["text"] == "Here is P-1001 [1]."  # the record it rests on, cited
    [label] = [e for e in reply.body["entities"] if e["type"] == "https://schema.org/Message"]
    assert label["additionalType"] == ["AIGeneratedContent"]
    [claim] = label["citation"]
    assert claim["position"] == 1 and claim["appearance"]["name"].startswith("P-1001 · 1208 S Congress Ave")
    assert reply.body["channelData"]["feedbackLoopEnabled"] is True
    assert ADDRESS in json.dumps(card.cards), card.cards  # the presentation, as an Adaptive Card
    assert card.cards[0]["version"] == "1.5" and steps.body["suggestedActions"]["actions"]
    assert reply.authorization is None  # anonymous local mode sends no token
    # The model saw who wrote, and the bot's turn ran as the permissions-file principal.
    assert unstamped(last_message(fake.requests[0])["content"]) == "Mona Manager: what about P-1001?"
    history = await history_of(rig.harness.store, f"teams:{TENANT}:{conversation}")
    assert history and history[-1]["content"] == "Here is P-1001."
    await rig.idle()
    assert len(rig.connector.messages()) == 2


async def test_typing_indicator_is_sent_while_the_model_works(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.latency = 3.5  # long enough for the indicator to be repeated
    rig.harness.fake.push(text("done thinking"))
    status, _ = await rig.post(message(rig.connector, "think hard"))
    assert status == 200
    await rig.connector.wait_for(rig.connector.messages, within=15)
    typing = rig.connector.typing()
    assert len(typing) >= 2, typing
    first_message = rig.connector.calls.index(rig.connector.messages()[0])
    assert rig.connector.calls.index(typing[0]) < first_message
    assert all(t.conversation_id == "a:personal-chat-1" for t in typing)


async def test_channel_mention_is_stripped_and_answered_in_the_thread(start_teams: StartTeams) -> None:
    rig = await start_teams()
    fake = rig.harness.fake
    fake.push(text("Hello channel"))
    channel = "19:general@thread.tacv2"
    threaded = f"{channel};messageid=1700000000001"
    body = message(rig.connector, "hello", conversation=threaded, conversation_type="channel", mention=True)
    status, _ = await rig.post(body)
    assert status == 200

    [reply] = await rig.connector.wait_for(rig.connector.messages)
    assert reply.body["text"] == "Hello channel"
    assert reply.kind == "reply" and reply.activity_id == "1700000000001"  # in the thread under the root post
    assert reply.conversation_id == threaded
    assert unstamped(last_message(fake.requests[0])["content"]) == "Mona Manager: hello"  # no <at>propbot</at>
    # The channel is the conversation (CHANNEL_MEMORY=channel, the default): the key is the channel without its
    # ;messageid= part, whichever thread the message was in.
    assert await history_of(rig.harness.store, f"teams:{TENANT}:{channel}")
    assert await history_of(rig.harness.store, f"teams:{TENANT}:{channel}:1700000000001") == []
    assert await history_of(rig.harness.store, f"teams:{TENANT}:{threaded}") == []


async def test_the_same_activity_delivered_twice_is_answered_once(start_teams: StartTeams) -> None:
    rig = await start_teams()
    rig.harness.fake.default = lambda _request: text("only once")
    body = message(rig.connector, "hi there")
    first, second = await asyncio.gather(rig.post(body), rig.post(body))
    assert first[0] == second[0] == 200
    await rig.connector.wait_for(rig.connector.messages)
    await rig.idle()  # a second reply would have been sent by now
    assert [m.body["text"] for m in rig.connector.messages()] == ["only once"]
    assert len(rig.harness.fake.requests) == 1


async def test_a_message_that_is_only_a_mention_is_ignored(start_teams: StartTeams) -> None:
    rig = await start_teams()
    body = message(rig.connector, "", conversation="19:x@thread.tacv2", conversation_type="channel", mention=True)
    status, _ = await rig.post(body)
    assert status == 200
    await rig.idle()
    assert rig.connector.calls == [] and rig.harness.fake.requests == []
