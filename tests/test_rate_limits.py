"""Per-user and per-workspace limits: over the limit the user gets plain words and nothing runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bot.core.agent import Agent
from bot.core.permissions import parse_permissions
from bot.observability.audit import AuditEvent
from bot.types import TextReply
from tests.support import harness
from tests.support.fake_openai import FakeOpenAI, text
from tests.support.harness import MANAGER, PERMISSIONS_YAML, STAFF, VIEWER, Harness, start_process, stop_process
from tests.support.peek import history_of
from tools import builtin_tools
from tools.db import Database

registry = builtin_tools()


class Recorded:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)


def refused(scope: str) -> float:
    return REGISTRY.get_sample_value("propbot_rate_limited_total", {"scope": scope}) or 0.0


def is_rate_refusal(replies: list[Any]) -> bool:
    return len(replies) == 1 and isinstance(replies[0], TextReply) and "faster than propbot allows" in replies[0].text


async def test_user_over_the_limit_is_refused_and_the_model_is_not_called(make_harness: Any) -> None:
    h: Harness = await make_harness(rate_limit_user_per_minute=2)
    h.fake.default = lambda request: text("hi")
    before = refused("user")
    assert not is_rate_refusal(await h.say(VIEWER, "one"))
    assert not is_rate_refusal(await h.say(VIEWER, "two"))
    third = await h.say(VIEWER, "three")
    assert is_rate_refusal(third) and "wait 30 seconds" in third[0].text  # type: ignore[union-attr]
    assert len(h.fake.requests) == 2
    assert refused("user") == before + 1
    history = await history_of(h.store, h.conversation().key)
    assert "three" not in str(history)  # nothing of the refused message was kept
    # Others in the workspace are unaffected.
    assert not is_rate_refusal(await h.say(STAFF, "me too"))


async def test_workspace_limit_covers_all_its_users_but_not_other_workspaces(make_harness: Any) -> None:
    h: Harness = await make_harness(rate_limit_workspace_per_minute=3)
    h.fake.default = lambda request: text("hi")
    before = refused("workspace")
    for user in (VIEWER, STAFF, MANAGER):
        assert not is_rate_refusal(await h.say(user, "hello"))
    assert is_rate_refusal(await h.say("slack:T1:UNEW", "hello"))
    assert refused("workspace") == before + 1
    assert not is_rate_refusal(await h.say("slack:T2:UOTHER", "hello", workspace="T2"))


async def test_a_refusal_is_audited(make_harness: Any) -> None:
    h: Harness = await make_harness(rate_limit_user_per_minute=1)
    h.fake.default = lambda request: text("hi")
    audit = Recorded()
    h.agent.limiter.audit = audit
    await h.say(VIEWER, "one")
    await h.say(VIEWER, "two")
    [event] = audit.events
    assert event.kind == "rate_limited" and event.user == VIEWER and event.conversation == "slack:T1:C1"
    assert "user limit" in event.detail


async def test_zero_disables_the_limits(make_harness: Any) -> None:
    h: Harness = await make_harness(rate_limit_user_per_minute=0, rate_limit_workspace_per_minute=0)
    h.fake.default = lambda request: text("hi")
    for i in range(30):
        assert not is_rate_refusal(await h.say(VIEWER, f"m{i}"))


@pytest.fixture
async def cluster_agent(
    fake_openai: FakeOpenAI, redis_cluster_url: str, sqlite_database: Database
) -> AsyncIterator[list[Agent]]:
    settings = harness.test_settings(fake_openai, redis_url=redis_cluster_url, rate_limit_user_per_minute=3)
    perms = parse_permissions(PERMISSIONS_YAML, allow_self_approval=False)
    processes = [start_process(settings, perms, sqlite_database) for _ in range(2)]  # two sharing the cluster
    for process in processes:
        assert await process.store.ping()
    yield [p.agent for p in processes]
    for process in processes:
        await stop_process(process)


async def test_limits_are_shared_across_processes_on_redis_cluster(
    cluster_agent: list[Agent], fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = lambda request: text("hi")
    outcomes = []
    for i in range(5):
        replies = await cluster_agent[i % 2].handle(Harness.incoming(VIEWER, f"m{i}", channel=f"C{i}"))
        outcomes.append(is_rate_refusal(replies))
    assert outcomes == [False, False, False, True, True]
    assert len(fake_openai.requests) == 3
