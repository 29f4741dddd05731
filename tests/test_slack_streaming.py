"""Answers streamed into Slack threads (chat.startStream / appendStream / stopStream) through the real server,
Bolt, slack_sdk and the openai client, against the fake Slack Web API and a fake model that streams."""

from __future__ import annotations

import json
from typing import Any

from tests.support.cards import has_buttons, posted_card
from tests.support.fake_openai import FakeOpenAI, Fault, call, calls, last_message, text
from tests.support.fake_slack import FakeSlack, MakeSlackBot, click, mention
from tests.support.peek import history_of
from tests.support.scripts import SCHEDULE, requests_with_key
from tests.support.state import settle
from tests.support.waiting import eventually
from tools.db import Database

SEARCH = {"location": "Austin, TX", "property_type": None, "min_price": None, "max_price": None, "min_bedrooms": 2}
ANSWER = (
    "I found **two** 2-bedroom homes in Austin. The first is on South Congress, close to the shops, and the "
    "second is further north with a garden. Both are available now; tell me which one to look at more closely "
    "and I can list its maintenance history."
)


def streamed_chunks(slack: FakeSlack) -> list[dict[str, Any]]:
    return [chunk for c in slack.calls if c.method.endswith("Stream") for chunk in c.args.get("chunks") or []]


def streamed_text(slack: FakeSlack) -> str:
    return "".join(c["text"] for c in streamed_chunks(slack) if c["type"] == "markdown_text")


def stream_methods(slack: FakeSlack) -> list[str]:
    return [c.method for c in slack.calls if c.method.startswith("chat.") and c.method.endswith("Stream")]


async def test_a_mention_streams_tool_status_then_text_then_results_and_feedback(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.streaming = True
    fake_openai.token_delay = 0.03  # ~35 chunks over ~1 s: more than one flush interval
    fake_openai.push(calls(call("search_properties", SEARCH)), text(ANSWER))
    event = mention("USTAFF", "find 2 bed homes in Austin")
    assert (await bot.send_event(event)).status == 200

    [stop] = await bot.slack.wait_for("chat.stopStream")
    methods = stream_methods(bot.slack)
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream" and "chat.appendStream" in methods
    [start] = bot.slack.calls_to("chat.startStream")
    assert (start.args["channel"], start.args["thread_ts"]) == ("C1", event["ts"])
    assert (start.args["recipient_user_id"], start.args["recipient_team_id"]) == ("USTAFF", "T1")
    assert streamed_text(bot.slack) == ANSWER  # exactly the model's words, nothing lost or doubled

    chunks = streamed_chunks(bot.slack)
    tasks = [(i, c["status"]) for i, c in enumerate(chunks) if c["type"] == "task_update"]
    first_text = next(i for i, c in enumerate(chunks) if c["type"] == "markdown_text")
    assert [s for _, s in tasks] == ["in_progress", "complete"]
    assert tasks[0][0] < tasks[1][0] < first_text  # the tool's status shows before its result and the answer
    running = chunks[tasks[0][0]]
    assert running["title"] == "Searching properties in Austin, TX…"

    final = json.dumps(stop.args["blocks"])
    assert "1208 S Congress Ave" in final and "P-1001" in final  # the search results as blocks
    feedback = stop.args["blocks"][-1]
    assert feedback["type"] == "context_actions" and feedback["elements"][0]["type"] == "feedback_buttons"
    assert feedback["elements"][0]["positive_button"]["value"] == "good|search_properties"
    assert bot.slack.calls_to("chat.postMessage") == []  # one message, the streamed one
    assert bot.slack.violations == [] and fake_openai.violations == []


async def test_streamed_text_is_defused_and_the_history_keeps_the_model_s_words(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.streaming = True
    fake_openai.push(text("Done, @channel <!here> see you"))
    event = mention("USTAFF", "say hi")
    await bot.send_event(event)
    await bot.slack.wait_for("chat.stopStream")
    shown = streamed_text(bot.slack)
    assert "@channel" not in shown and "<!here>" not in shown and "see you" in shown
    history = await history_of(bot.runtime.store, "slack:T1:C1")  # the channel's memory
    assert history[-1] == {"role": "assistant", "content": "Done, @channel <!here> see you"}


async def test_without_streaming_one_message_is_posted_and_the_choice_is_made_once(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    assert bot.slack.streaming is False  # chat.startStream answers unknown_method
    fake_openai.push(calls(call("search_properties", SEARCH)), text(ANSWER), text("Second answer"))
    first = mention("USTAFF", "find 2 bed homes in Austin")
    await bot.send_event(first)
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert post.args["thread_ts"] == first["ts"] and "two" in json.dumps(post.args["blocks"])
    assert post.args["blocks"][-1]["type"] == "context_actions"
    assert len(bot.slack.calls_to("chat.startStream")) == 1

    second = mention("USTAFF", "and again", thread_ts=first["ts"])
    await bot.send_event(second)
    await bot.slack.wait_for("chat.postMessage", 2)
    assert len(bot.slack.calls_to("chat.startStream")) == 1  # not asked again: the workspace cannot stream
    assert [c.method for c in bot.slack.calls if "Stream" in c.method] == ["chat.startStream"]


async def test_a_stream_that_fails_half_way_ends_as_one_whole_message(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.streaming = True
    fake_openai.token_delay = 0.03
    bot.slack.fail_next("chat.appendStream", status=200, retry_after=None, error="internal_error")
    fake_openai.push(text(ANSWER))
    event = mention("USTAFF", "tell me about Austin")
    await bot.send_event(event)
    [update] = await bot.slack.wait_for("chat.update")
    [start] = bot.slack.calls_to("chat.startStream")
    assert update.args["channel"] == "C1" and update.args["ts"] == bot.slack.replies("C1")[0]["ts"]
    assert start.args["thread_ts"] == event["ts"]
    assert "two" in json.dumps(update.args["blocks"]) and "maintenance history" in json.dumps(update.args["blocks"])
    assert update.args["blocks"][-1]["type"] == "context_actions"
    assert bot.slack.calls_to("chat.postMessage") == []  # the half-streamed message became the answer
    assert len(bot.slack.calls_to("chat.appendStream")) == 1  # no more appends after the failure
    [message] = bot.slack.replies("C1")
    assert message["ts"] == update.args["ts"]


def schedule_then_follow_up(request: dict[str, Any]) -> dict[str, Any]:
    if last_message(request)["role"] == "user":
        return calls(call("schedule_maintenance", SCHEDULE), content="Let me ask a manager.")
    return text("The plumber is booked: request created and the tenant will be told.")


async def test_an_approval_mid_stream_shows_its_card_once_and_the_decision_streams_its_follow_up(
    slack_bots: MakeSlackBot, database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(database)
    bot.slack.streaming = True
    fake_openai.default = schedule_then_follow_up
    event = mention("USTAFF", "please get a plumber to P-1001, the sink leaks")
    await bot.send_event(event)
    card = await posted_card(bot, event["ts"])
    [stop] = await bot.slack.wait_for("chat.stopStream")
    assert "context_actions" in json.dumps(stop.args.get("blocks"))  # the words before the card are an answer
    assert streamed_text(bot.slack) == "Let me ask a manager."
    waiting = [c for c in streamed_chunks(bot.slack) if c["type"] == "task_update"]
    assert waiting[-1]["status"] == "pending" and waiting[-1]["title"] == "Waiting for approval"
    cards = [c for c in bot.slack.calls_to("chat.postMessage") if "propbot_approve" in json.dumps(c.args["blocks"])]
    assert len(cards) == 1 and has_buttons(bot, card)

    before = len(bot.slack.calls)
    await bot.send_click(click("UMANAGER", "propbot_approve", card.approval_id, card.channel, card.ts))
    await bot.slack.wait_for("chat.stopStream", 2)
    await eventually(lambda: not has_buttons(bot, card))
    after = [c for c in bot.slack.calls[before:] if c.method.endswith("Stream")]
    assert after[0].method == "chat.startStream" and after[0].args["thread_ts"] == card.thread
    assert after[0].args["recipient_user_id"] == "UMANAGER"
    follow = [ch for c in after for ch in c.args.get("chunks") or []]
    tasks = [ch for ch in follow if ch["type"] == "task_update"]
    assert [t["status"] for t in tasks] == ["in_progress", "complete"]
    assert tasks[0]["title"] == "Scheduling maintenance for P-1001…"
    said = "".join(ch["text"] for ch in follow if ch["type"] == "markdown_text")
    assert said == "The plumber is booked: request created and the tenant will be told."
    assert after[-1].args["blocks"][-1]["elements"][0]["negative_button"]["value"] == "bad|schedule_maintenance"
    assert await requests_with_key(database, card.approval_id) == 1
    assert bot.slack.violations == [] and fake_openai.violations == []


async def test_a_turn_abandoned_mid_stream_removes_what_it_showed(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.slack.live import SlackLive, Target, shown, slack_streaming
    from bot.types import Conversation, Progress

    fake_slack.streaming = True
    client = AsyncWebClient(token=fake_slack.token, base_url=fake_slack.base_url)

    class NothingPosted:
        async def post_answer(self, *_: Any, **__: Any) -> None:
            raise AssertionError("an abandoned turn posts nothing")

        async def post_messages(self, *_: Any, **__: Any) -> None:
            raise AssertionError("an abandoned turn posts nothing")

    where = Conversation(platform="slack", workspace="T1", channel="C9", thread="1.2")
    target = Target("T1", "C9", "1.2", "USTAFF", "T1")
    live = SlackLive(client, slack_streaming(), target, NothingPosted(), where, interval=0.01)
    async with shown(live):
        await live.progress(Progress(id="c1", title="Looking up P-1001…"))
        await live.text("Half an ans")
        await fake_slack.wait_for("chat.startStream")
    methods = [c.method for c in fake_slack.calls]
    assert methods[-2:] == ["chat.stopStream", "chat.delete"]
    assert fake_slack.replies("C9") == []  # the turn runs again later: nothing of this one stays


async def test_task_titles_outputs_and_the_panel_status_are_defused(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    """The model writes the arguments a title shows and a tool's error repeats them: no broadcast, no mention."""
    bot = await slack_bots(sqlite_database)
    bot.slack.streaming = True
    loud = {**SEARCH, "location": "<!channel> <@U0ADMIN> @here Austin"}
    fake_openai.push(calls(call("search_properties", loud), call("get_property", {"property_id": "<!here>"})))
    fake_openai.push(text("Nothing there."))
    await bot.send_event(mention("USTAFF", "find homes"))
    await bot.slack.wait_for("chat.stopStream")
    tasks = [c for c in streamed_chunks(bot.slack) if c["type"] == "task_update"]
    shown = json.dumps([(c["title"], c.get("output", "")) for c in tasks])
    assert "Austin" in shown and "here" in shown  # the words stay, defused
    for loud_part in ("<!channel>", "<@U0ADMIN>", "<!here>", "@here"):
        assert loud_part not in json.loads(json.dumps(shown)), loud_part


async def test_a_turn_stopped_at_the_tool_step_limit_ends_its_streamed_message_with_the_notice(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database, max_tool_rounds=2)
    bot.slack.streaming = True
    lookup = calls(call("get_property", {"property_id": "P-1001"}))
    fake_openai.push(lookup, calls(call("get_property", {"property_id": "P-1002"})))
    await bot.send_event(mention("USTAFF", "look everything up"))
    [stop] = await bot.slack.wait_for("chat.stopStream")
    notice = [c["text"] for c in stop.args["chunks"] if c["type"] == "markdown_text"]
    assert notice == ["⚠️ I stopped after 2 tool steps without reaching an answer. Could you narrow the request down?"]
    assert "P-1002" in json.dumps(stop.args["blocks"])  # what the steps found, in the same message
    assert all(b["type"] != "context_actions" for b in stop.args["blocks"])  # no feedback on a notice
    await settle(bot.runtime.settings.redis_url or "", bot.dispatcher.tasks)  # the turn's delivery is done
    assert bot.slack.calls_to("chat.postMessage") == []  # one turn, one message
    assert len(bot.slack.replies("C1")) == 1


async def test_a_model_failure_after_streamed_steps_ends_the_streamed_message_with_the_notice(
    slack_bots: MakeSlackBot, sqlite_database: Database, fake_openai: FakeOpenAI
) -> None:
    bot = await slack_bots(sqlite_database)
    bot.slack.streaming = True
    refused = {"error": {"message": "context too long", "type": "invalid_request_error"}}
    fake_openai.push(calls(call("get_property", {"property_id": "P-1001"})), Fault(400, body=refused))
    await bot.send_event(mention("USTAFF", "P-1001?"))
    [stop] = await bot.slack.wait_for("chat.stopStream")
    [notice] = [c["text"] for c in stop.args["chunks"] if c["type"] == "markdown_text"]
    assert notice.startswith("⚠️ The AI service could not process this conversation.")
    await settle(bot.runtime.settings.redis_url or "", bot.dispatcher.tasks)  # the turn's delivery is done
    assert bot.slack.calls_to("chat.postMessage") == []
    assert len(bot.slack.replies("C1")) == 1
