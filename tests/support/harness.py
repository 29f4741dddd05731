"""An agent wired to real parts: the suite's redis-server, a real database, the fake OpenAI server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.config import Settings
from bot.core.agent import Agent
from bot.core.permissions import Permissions, parse_permissions
from bot.core.tool_cache import ToolCache
from bot.llm.openai_model import LLMClient
from bot.observability.audit import AuditEvent, AuditSink
from bot.store import Store
from bot.store.factory import make_store
from bot.types import Conversation, Decision, DecisionAction, DecisionResult, Incoming, Reply
from tests.support.fake_openai import FakeOpenAI
from tools import builtin_tools
from tools.db import Database

registry = builtin_tools()

TEST_OPENAI_KEY = "sk-test-openai-key-do-not-log-0001"

PERMISSIONS_YAML = """\
default_role: viewer
roles:
  viewer:
    tools: [search_properties, get_property, list_maintenance_requests]
  staff:
    tools: [search_properties, get_property, list_maintenance_requests, schedule_maintenance,
            cancel_maintenance_request]
  manager:
    tools: ["*"]
    approves: ["*"]
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:UMANAGER2": manager
  "slack:T1:USTAFF": staff
  "teams:tenant-1:aad-manager": manager
  "teams:tenant-1:aad-staff": staff
"""

MANAGER = "slack:T1:UMANAGER"
MANAGER2 = "slack:T1:UMANAGER2"
STAFF = "slack:T1:USTAFF"
VIEWER = "slack:T1:UVIEWER"

_events = itertools.count(1)


def test_settings(fake: FakeOpenAI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": TEST_OPENAI_KEY,
        "openai_base_url": fake.base_url,
        "openai_model": "fake-model",
        "openai_timeout": 5.0,
        "openai_deadline": 10.0,
        "lock_wait": 10.0,
        # Off unless a test is about them: many tests send dozens of messages as one user.
        "rate_limit_user_per_minute": 0,
        "rate_limit_workspace_per_minute": 0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Harness:
    settings: Settings
    store: Store
    db: Database
    fake: FakeOpenAI
    permissions: Permissions
    agent: Agent
    extra: list[Agent] = field(default_factory=list)

    @staticmethod
    def conversation(channel: str = "C1", workspace: str = "T1") -> Conversation:
        return Conversation(platform="slack", workspace=workspace, channel=channel)

    async def say(self, user: str, text: str, channel: str = "C1", workspace: str = "T1") -> list[Reply]:
        return await self.agent.handle(self.incoming(user, text, channel, workspace))

    @staticmethod
    def incoming(user: str, text: str, channel: str = "C1", workspace: str = "T1") -> Incoming:
        return Incoming(
            conversation=Harness.conversation(channel, workspace),
            user=user,
            text=text,
            event_id=f"ev-{next(_events)}",
        )

    async def decide(
        self, approval_id: str, user: str, action: str = "approve", agent: Agent | None = None
    ) -> DecisionResult:
        decision = Decision(
            approval_id=approval_id, user=user, action=DecisionAction(action), platform="slack", workspace="T1"
        )
        return await (agent or self.agent).decide(decision)

    async def another_agent(self, permissions: str | None = None, audit: AuditSink | None = None) -> Agent:
        """A second 'process': its own store client on the same Redis, its own model client, and its own
        permissions file when `permissions` is given (an edit deployed while approvals wait)."""
        store = make_store(self.settings.redis_url, history_ttl=self.settings.history_ttl)
        perms = self.permissions if permissions is None else parse_permissions(permissions)
        llm = LLMClient(self.settings)
        agent = Agent(self.settings, store, llm, registry, perms, self.db, audit=audit, cache=ToolCache(store))
        self.extra.append(agent)
        return agent


class AuditList:
    """An audit sink that keeps what it is given, for tests to read."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


async def close_agent(agent: Agent) -> None:
    await agent.llm.close()
    await agent.store.close()


MakeHarness = Callable[..., "AsyncIterator[Harness]"]


@pytest.fixture
async def make_harness(
    fake_openai: FakeOpenAI, redis_url: str, database: Database
) -> AsyncIterator[Callable[..., Any]]:
    built: list[Harness] = []

    async def make(
        redis: bool = True, permissions: str = PERMISSIONS_YAML, url: str | None = None, **overrides: Any
    ) -> Harness:
        """`url` points the harness at another Redis (e.g. the suite's cluster)."""
        settings = test_settings(fake_openai, redis_url=(url or redis_url) if redis else None, **overrides)
        perms = parse_permissions(permissions, allow_self_approval=settings.allow_self_approval)
        store = make_store(settings.redis_url, history_ttl=settings.history_ttl)
        agent = Agent(settings, store, LLMClient(settings), registry, perms, database, cache=ToolCache(store))
        harness = Harness(settings, store, database, fake_openai, perms, agent)
        built.append(harness)
        return harness

    yield make
    for harness in built:
        for agent in [harness.agent, *harness.extra]:
            await close_agent(agent)
