"""The model's streaming path through the real openai client against a fake server that streams the way the
API does (server-sent chunks): the assembled message equals the plain one, the text arrives as it is written,
and a failure after text was shown is not retried (it would be shown twice)."""

from __future__ import annotations

import pytest

from bot.errors import ModelError, ModelFailure
from bot.llm import ModelConfig, OpenAIChatModel
from tests.support.fake_openai import FakeOpenAI, Fault, call, calls, text

USER = [{"role": "user", "content": "hello"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_property", "parameters": {"type": "object", "properties": {}}},
    }
]


def client(fake: FakeOpenAI) -> OpenAIChatModel:
    return OpenAIChatModel(ModelConfig(api_key="sk-test", model="fake-model", base_url=fake.base_url, max_attempts=3))


class Shown:
    def __init__(self) -> None:
        self.deltas: list[str] = []

    async def __call__(self, delta: str) -> None:
        self.deltas.append(delta)


@pytest.mark.parametrize(
    "answer",
    [
        text("Three homes match: P-1001, P-1002 and P-1003. Want details on one of them?"),
        calls(
            call("get_property", {"property_id": "P-1001"}, "call_a"),
            call("list_maintenance_requests", {"property_id": "P-1001", "status": None}, "call_b"),
        ),
        calls(call("get_property", {"property_id": "P-1001"}, "call_c"), content="Let me look that up."),
    ],
    ids=["text", "two-tool-calls", "text-and-a-call"],
)
async def test_a_streamed_answer_assembles_to_the_same_message_as_a_plain_one(
    fake_openai: FakeOpenAI, answer: dict[str, object]
) -> None:
    model = client(fake_openai)
    fake_openai.push(answer, answer)
    shown = Shown()
    streamed = await model.complete(USER, TOOLS, shown)
    plain = await model.complete(USER, TOOLS)
    assert streamed.message == plain.message
    assert "".join(shown.deltas) == (answer.get("content") or "")
    assert len(shown.deltas) > 1 or not answer.get("content")  # several deltas, not one at the end
    assert streamed.usage.prompt_tokens == plain.usage.prompt_tokens > 0
    assert fake_openai.requests[0]["stream"] is True
    assert fake_openai.requests[0]["stream_options"] == {"include_usage": True}
    assert "stream" not in fake_openai.requests[1]
    await model.close()


async def test_a_refusal_is_the_answer_and_is_shown(fake_openai: FakeOpenAI) -> None:
    model = client(fake_openai)
    fake_openai.push({"role": "assistant", "content": None, "refusal": "I can't help with that."})
    shown = Shown()
    reply = await model.complete(USER, [], shown)
    assert reply.message == {"role": "assistant", "content": "I can't help with that."}
    assert "".join(shown.deltas) == "I can't help with that."
    await model.close()


async def test_a_failure_before_any_text_is_retried(fake_openai: FakeOpenAI) -> None:
    model = client(fake_openai)
    fake_openai.push(Fault(503, headers={"retry-after-ms": "10"}), text("Fine now."))
    shown = Shown()
    reply = await model.complete(USER, [], shown)
    assert reply.attempts == 2 and "".join(shown.deltas) == "Fine now."
    await model.close()


async def test_a_stream_cut_after_text_was_shown_is_not_retried(fake_openai: FakeOpenAI) -> None:
    model = client(fake_openai)
    fake_openai.cut_stream_after = 4  # the role chunk and three pieces of text, then the connection drops
    fake_openai.push(text("A long answer that will never finish because the connection drops."), text("again"))
    shown = Shown()
    with pytest.raises(ModelError) as failed:
        await model.complete(USER, [], shown)
    assert failed.value.kind is ModelFailure.UNAVAILABLE
    assert "".join(shown.deltas) == "A long answer that wi"  # three 7-character chunks
    assert len(fake_openai.requests) == 1  # not asked again: the shown text would have appeared twice
    await model.close()


async def test_with_streaming_off_the_text_comes_whole_from_a_plain_call(fake_openai: FakeOpenAI) -> None:
    config = ModelConfig(api_key="sk-test", model="fake-model", base_url=fake_openai.base_url, stream=False)
    model = OpenAIChatModel(config)
    fake_openai.push(text("All of it at once."))
    shown = Shown()
    reply = await model.complete(USER, [], shown)
    assert shown.deltas == ["All of it at once."] and reply.message["content"] == "All of it at once."
    assert "stream" not in fake_openai.requests[0]
    await model.close()
