"""LOG_FORMAT=json: every line a turn writes is one JSON object naming the conversation and the request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.observability.logs import setup_logging
from bot.types import Incoming, TextReply
from tests.support.fake_openai import Fault, call, calls, last_message, text
from tests.support.harness import MANAGER, TEST_OPENAI_KEY, Harness

_TOUCHED = ("httpx", "httpcore", "openai", "aiosqlite", "asyncio", "propbot")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """propbot's own logging setup writing JSON into a buffer; the suite's handlers come back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {name: logging.getLogger(name).level for name in _TOUCHED})
    stream = io.StringIO()
    setup_logging("DEBUG", "json", [TEST_OPENAI_KEY], stream=stream)
    # Bolt gives its app logger ("propbot", the parent of propbot.audit) the root level of the moment an
    # app is built; an earlier test's app would otherwise silence the audit lines here.
    logging.getLogger("propbot").setLevel(logging.NOTSET)
    try:
        yield stream
    finally:
        handlers, level, levels = saved
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)


def lines_since(stream: io.StringIO, start: int) -> list[dict[str, Any]]:
    written = stream.getvalue()[start:]
    entries = []
    for line in written.splitlines():
        entry = json.loads(line)  # a line that is not one JSON object fails here
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def model(request: dict[str, Any]) -> dict[str, Any]:
    if last_message(request)["role"] == "user":
        return calls(call("search_properties", {"location": "Austin"}))
    return text("found some")


async def test_every_line_of_a_turn_carries_conversation_and_request_id(
    make_harness: Any, json_log: io.StringIO
) -> None:
    h: Harness = await make_harness()
    h.fake.default = model
    turns: list[tuple[Incoming, list[dict[str, Any]]]] = []

    async def turn(msg: Incoming) -> list[Any]:
        start = len(json_log.getvalue())
        replies = await h.agent.handle(msg)
        turns.append((msg, lines_since(json_log, start)))
        return replies

    first = h.incoming(MANAGER, "what is in Austin?", channel="C-logs-1")
    assert isinstance((await turn(first))[0], TextReply)
    assert await turn(first) == []  # the same delivery again: dropped, and logged as such
    h.fake.default = lambda request: Fault(500)
    failing = h.incoming(MANAGER, "again", channel="C-logs-2", workspace="T9")
    await turn(failing)

    for msg, entries in turns:
        assert entries, f"turn {msg.event_id} logged nothing"
        for entry in entries:
            assert entry["conversation"] == msg.conversation.key, entry
            assert entry["request_id"] == msg.event_id, entry
            assert {"ts", "level", "logger", "msg"} <= entry.keys()
    everything = [e["msg"] for _, entries in turns for e in entries]
    assert any("search_properties" in m for m in everything)  # the tool call's audit line
    assert any("dropped duplicate delivery" in m for m in everything)
    assert any("model call failed" in m for m in everything)
    assert TEST_OPENAI_KEY not in json_log.getvalue()

    # The context ends with the turn: a line written afterwards claims no conversation.
    start = len(json_log.getvalue())
    logging.getLogger("propbot.test").warning("between turns")
    [after] = lines_since(json_log, start)
    assert (after["conversation"], after["request_id"]) == ("-", "-")


def test_text_format_carries_the_same_context(json_log: io.StringIO) -> None:
    from bot.observability.logs import log_context

    stream = io.StringIO()
    setup_logging("INFO", "text", stream=stream)
    with log_context("slack:T1:C1", "Ev123"):
        logging.getLogger("propbot.test").info("inside")
    assert "[slack:T1:C1 Ev123] inside" in stream.getvalue()
