"""The circuit breaker around the model and per-tool timeouts: an outage answers fast, a slow tool is
stopped, and the turn still finishes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from bot.app.runtime import model_config
from bot.config import load_settings
from bot.llm import OpenAIChatModel
from bot.llm.circuit import CircuitBreaker, CircuitOpen, CircuitState
from bot.types import TextReply
from tests.support.fake_openai import Fault, call, calls, last_message, text, tool_results
from tests.support.harness import MANAGER, Harness
from tests.support.waiting import eventually
from tools import Registry, ToolContext, builtin_tools

registry = builtin_tools()

PAUSING = "pausing calls"


class Clock:
    """A clock the test moves: a cool-down passes when the test says so, not after a sleep a busy machine may
    stretch."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> CircuitState:
    # A call, so mypy does not narrow `breaker.state` to one literal across the steps of a test.
    return breaker.state


def only_text(replies: list[Any]) -> str:
    assert len(replies) == 1 and isinstance(replies[0], TextReply), replies
    return replies[0].text


# -- the breaker on its own, with a clock we move ---------------------------------------------------


def test_opens_after_the_threshold_and_fails_fast_for_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=30.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert state_of(breaker) is CircuitState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert state_of(breaker) is CircuitState.OPEN
    clock.now += 10
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_in == pytest.approx(20.0)
    clock.now += 19.9
    assert state_of(breaker) is CircuitState.OPEN


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30.0, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) is CircuitState.CLOSED


def test_half_open_lets_exactly_one_probe_through_and_its_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert state_of(breaker) is CircuitState.HALF_OPEN
    breaker.before_call()  # the probe
    for _ in range(3):  # everyone else while the probe is out
        with pytest.raises(CircuitOpen):
            breaker.before_call()
    breaker.record_success()
    assert state_of(breaker) is CircuitState.CLOSED
    breaker.before_call()
    breaker.before_call()


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=5.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 6
    breaker.before_call()
    breaker.record_failure()
    assert state_of(breaker) is CircuitState.OPEN
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 0.1
    assert state_of(breaker) is CircuitState.HALF_OPEN
    breaker.before_call()  # a new probe after the second cool-down


def test_an_abandoned_probe_frees_its_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    breaker.before_call()
    breaker.record_abandoned()
    assert state_of(breaker) is CircuitState.HALF_OPEN
    breaker.before_call()  # the next caller probes instead


def test_threshold_and_cooldown_come_from_settings() -> None:
    settings = load_settings(_env_file=None, circuit_failure_threshold=2, circuit_cooldown=7.5)
    llm = OpenAIChatModel(model_config(settings))
    assert (llm.breaker.failure_threshold, llm.breaker.cooldown) == (2, 7.5)
    assert (
        load_settings(_env_file=None).circuit_failure_threshold,
        load_settings(_env_file=None).circuit_cooldown,
    ) == (
        5,
        30.0,
    )


# -- through the agent, against the fake OpenAI server ------------------------------------------------


async def outage(make_harness: Any, cooldown: float = 30.0) -> tuple[Harness, Clock]:
    """A harness whose model fails every call, one attempt per call so each turn is one failure."""
    h: Harness = await make_harness(openai_max_attempts=1, circuit_failure_threshold=3, circuit_cooldown=cooldown)
    clock = Clock()
    assert isinstance(h.process.model, OpenAIChatModel)
    h.process.model.breaker.clock = clock
    h.fake.default = lambda request: Fault(500)
    return h, clock


async def test_after_the_threshold_turns_answer_without_calling_the_model(make_harness: Any) -> None:
    h, clock = await outage(make_harness)
    for i in range(3):
        reply = only_text(await h.say(MANAGER, f"attempt {i}"))
        assert "cannot be reached" in reply
    assert len(h.fake.requests) == 3
    clock.now += 29.9  # still cooling down
    reply = only_text(await h.say(MANAGER, "and now?"))
    assert PAUSING in reply and "Traceback" not in reply
    assert len(h.fake.requests) == 3, "an open circuit must not reach the model server"

    clock.now += 0.1
    h.fake.default = lambda request: text("back again")
    assert only_text(await h.say(MANAGER, "probe")) == "back again"
    assert len(h.fake.requests) == 4  # exactly one probe, and it closed the circuit
    assert only_text(await h.say(MANAGER, "and after")) == "back again"
    assert h.fake.violations == []


async def test_half_open_sends_one_probe_while_concurrent_turns_fail_fast(make_harness: Any) -> None:
    h, clock = await outage(make_harness)
    for i in range(3):
        await h.say(MANAGER, f"attempt {i}", channel=f"C-fail-{i}")
    clock.now += 30
    sent = len(h.fake.requests)
    release = asyncio.Event()

    async def slow_recovery(request: dict[str, Any]) -> dict[str, Any]:
        await release.wait()  # the probe is in flight until every other turn has been answered
        return text("recovered")

    h.fake.default = slow_recovery
    turns = [asyncio.create_task(h.say(MANAGER, f"hello {i}", channel=f"C-probe-{i}")) for i in range(5)]
    await eventually(lambda: len(h.fake.requests) == sent + 1 and sum(t.done() for t in turns) == 4)
    release.set()
    answers = [only_text(r) for r in await asyncio.gather(*turns)]
    assert answers.count("recovered") == 1
    assert sum(PAUSING in a for a in answers) == 4
    assert len(h.fake.requests) == sent + 1


async def test_a_cancelled_probe_does_not_leave_the_circuit_stuck(make_harness: Any) -> None:
    h, clock = await outage(make_harness)
    for i in range(3):
        await h.say(MANAGER, f"attempt {i}")
    clock.now += 30
    sent = len(h.fake.requests)

    release = asyncio.Event()

    async def hang(request: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return text("too late")

    h.fake.default = hang
    probe = asyncio.create_task(h.say(MANAGER, "probe", channel="C-cancelled"))
    await eventually(lambda: len(h.fake.requests) > sent)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    h.fake.default = lambda request: text("fine")
    try:
        assert only_text(await h.say(MANAGER, "next", channel="C-next")) == "fine"
    finally:
        release.set()  # let the fake server's abandoned handler finish, so it shuts down at once


# -- per-tool timeouts ----------------------------------------------------------------------------------


class NapArgs(BaseModel):
    seconds: float = Field(description="How long to nap.")


def with_slow_tool(stopped: list[str]) -> Registry:
    tools = Registry()
    for spec in registry.specs():
        tools.register(spec)

    @tools.tool(timeout=0.2)
    async def resilience_slow_lookup(args: NapArgs, ctx: ToolContext) -> dict[str, Any]:
        """A lookup that hangs, to test per-tool timeouts."""
        try:
            await asyncio.sleep(args.seconds)
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise
        return {"finished": True}

    return tools


async def test_a_slow_tool_is_stopped_and_the_model_hears_why(make_harness: Any) -> None:
    stopped: list[str] = []
    h: Harness = await make_harness(tools=with_slow_tool(stopped))
    agent = h.agent

    def model(request: dict[str, Any]) -> dict[str, Any]:
        if last_message(request)["role"] == "user":
            return calls(call("resilience_slow_lookup", {"seconds": 5}))
        return text("tool said: " + json.dumps(tool_results(request)))

    h.fake.default = model
    reply = only_text(await agent.handle(h.incoming(MANAGER, "look it up")))
    [result] = tool_results(h.fake.requests[-1])
    assert result["ok"] is False and "was stopped" in result["error"]
    assert reply.startswith("tool said:") and "was stopped" in reply
    assert stopped == ["cancelled"]  # stopped at its timeout: cancelled, not left running nor run to its end
    assert len(h.fake.requests) == 2 and h.fake.violations == []
