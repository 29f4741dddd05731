"""A prompt the provider's cache can serve: each conversation's requests carry its `prompt_cache_key` (a hash of the
conversation, on for OpenAI's own API or when OPENAI_PROMPT_CACHE_KEY says so), what the provider reports as cached
is counted (`propbot_prompt_tokens_total{cached}`), and the history is trimmed in one deep cut when it outgrows its
budget, so the requests' common prefix then holds for many turns instead of moving every turn."""

from __future__ import annotations

import hashlib
from typing import Any

from prometheus_client import REGISTRY

from bot.app.runtime import _cache_key_wanted
from bot.core.history import TokenCounter
from bot.core.transcript import TRIM_TO, Transcript
from bot.store.memory import MemoryStore
from tests.support import harness
from tests.support.fake_openai import FakeOpenAI, last_message, text
from tests.support.harness import MANAGER, Harness


def tokens_counted(cached: str) -> float:
    return REGISTRY.get_sample_value("propbot_prompt_tokens_total", {"cached": cached}) or 0.0


async def test_requests_carry_the_conversations_cache_key_and_cached_tokens_are_counted(
    make_harness: Any, fake_openai: FakeOpenAI
) -> None:
    h: Harness = await make_harness(openai_prompt_cache_key=True)
    fake_openai.default = lambda request: text("A long answer. " * 200)  # a history past the cache's 1,024 tokens
    before = tokens_counted("true"), tokens_counted("false")
    for n in range(4):
        await h.say(MANAGER, f"question {n}")
    key = hashlib.sha256(b"slack:T1:C1").hexdigest()[:32]
    assert {r.get("prompt_cache_key") for r in fake_openai.requests} == {key}
    cached = tokens_counted("true") - before[0]
    assert cached > 0 and tokens_counted("false") - before[1] > 0
    assert last_message(fake_openai.requests[-1])["role"] == "user"


def test_the_cache_key_is_sent_to_openai_itself_unless_told_otherwise(fake_openai: FakeOpenAI) -> None:
    assert _cache_key_wanted(harness.test_settings(fake_openai, openai_base_url=None))
    assert _cache_key_wanted(harness.test_settings(fake_openai, openai_base_url="https://api.openai.com/v1"))
    assert not _cache_key_wanted(
        harness.test_settings(fake_openai)
    )  # another server (the fake): it may refuse the field
    assert _cache_key_wanted(harness.test_settings(fake_openai, openai_prompt_cache_key=True))


async def test_a_history_over_budget_is_cut_deep_once_then_holds_its_prefix() -> None:
    counter, store = TokenCounter(), MemoryStore()
    transcript = Transcript(store, counter, budget=2000, outcome_ttl=60)
    heads: list[dict[str, Any]] = []
    cuts = 0
    for n in range(40):
        opened = await transcript.open("slack:T1:C1")
        opened.history += [
            {"role": "user", "content": f"question {n} " + "word " * 40},
            {"role": "assistant", "content": "answer " * 40},
        ]
        assert await transcript.append("slack:T1:C1", opened) is None
        history = (await store.load_history("slack:T1:C1")).history
        assert counter.messages(history) <= 2000
        if heads and history[0] != heads[-1]:
            cuts += 1
            assert counter.messages(history) <= 2000 * TRIM_TO + 200  # cut deep, not to just under the budget
        heads.append(history[0])
    # About 100 tokens a turn: a cut every ~8 turns, not one every turn once the budget is reached.
    assert 2 <= cuts <= 6
