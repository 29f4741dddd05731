"""History stays a valid Chat Completions request through repair, trimming and compaction."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.core.history import (
    EARLIER_NOT_KEPT,
    OLD_RESULT_CHARS,
    TokenCounter,
    compact_old_results,
    prepare,
    sanitize,
    trim,
)
from tests.support.fake_openai import validate

COUNTER = TokenCounter()


def exchange(i: int, result_size: int = 50) -> list[dict[str, Any]]:
    call_id = f"call_{i}"
    return [
        {"role": "user", "content": f"question {i}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "search_properties", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps({"ok": True, "data": "x" * result_size})},
        {"role": "assistant", "content": f"answer {i}"},
    ]


def test_sanitize_answers_open_calls_and_drops_orphans() -> None:
    broken = [
        {"role": "tool", "tool_call_id": "ghost", "content": "{}"},
        *exchange(1)[:2],  # a call whose result was lost
        {"role": "user", "content": "next"},
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},  # answers nothing any more
    ]
    fixed = sanitize(broken)
    assert validate({"messages": fixed}) == []
    assert fixed[0]["role"] == "user" and fixed[2]["role"] == "tool" and "no result" in fixed[2]["content"]


def test_a_history_that_opens_with_an_approval_outcome_keeps_it_behind_a_note() -> None:
    # An approval decided after its conversation's history expired: the outcome is all there is.
    outcome: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_approval_a1", "type": "function", "function": {"name": "x", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_approval_a1", "content": '{"ok":true}'},
        {"role": "assistant", "content": "Done: MR-1 was scheduled."},
    ]
    fixed = sanitize(outcome)
    assert fixed == [{"role": "user", "content": EARLIER_NOT_KEPT}, *outcome]
    assert validate({"messages": fixed}) == []


def test_trim_drops_whole_exchanges_from_the_old_end() -> None:
    history = [m for i in range(30) for m in exchange(i)]
    kept = trim(history, 300, COUNTER)
    assert kept[0] == {"role": "user", "content": kept[0]["content"]}
    assert kept[-1]["content"] == "answer 29"
    assert COUNTER.messages(kept) <= 300 and validate({"messages": kept}) == []


def test_older_tool_results_are_shortened_the_latest_kept_whole() -> None:
    history = [*exchange(1, 5000), *exchange(2, 5000)]
    compacted = compact_old_results(history)
    assert len(compacted[2]["content"]) < OLD_RESULT_CHARS + 100
    assert compacted[6]["content"] == history[6]["content"]
    assert history[2]["content"].endswith('x"}')  # the stored history is not changed


def test_prepare_puts_the_system_prompt_first_and_fits_the_budget() -> None:
    system = {"role": "system", "content": "be brief"}
    history = [m for i in range(50) for m in exchange(i, 3000)]
    prompt = prepare(history, system, 2000, COUNTER)
    assert prompt[0] == system and COUNTER.messages(prompt) <= 2000
    assert validate({"messages": prompt}) == []


ROLES = st.sampled_from(["user", "assistant", "assistant_call", "tool"])


@given(st.lists(st.tuples(ROLES, st.integers(0, 3)), max_size=40), st.integers(50, 2000))
def test_any_history_prepares_into_a_valid_request(shape: list[tuple[str, int]], budget: int) -> None:
    messages: list[dict[str, Any]] = []
    for role, n in shape:
        if role == "assistant_call":
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": f"c{n}", "type": "function", "function": {"name": "t", "arguments": "{}"}}],
                }
            )
        elif role == "tool":
            messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": "r" * (n * 400)})
        else:
            messages.append({"role": role, "content": f"{role} {n}"})
    prompt = prepare(messages, {"role": "system", "content": "s"}, budget, COUNTER)
    assert validate({"messages": prompt}) == []
