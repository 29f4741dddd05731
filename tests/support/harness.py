"""The core wired to real parts, as the composition root wires it: the suite's redis-server, a real database,
the fake OpenAI server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.app.runtime import Runtime, assemble, model_config
from bot.config import Settings
from bot.core.agent import Agent
from bot.core.approvals import ApprovalDesk
from bot.core.permissions import Permissions, parse_permissions
from bot.ingress.dispatch import CoreParts
from bot.llm import OpenAIChatModel
from bot.observability.audit import AuditEvent, AuditSink, LogAudit
from bot.store import Store
from bot.store.factory import open_store
from bot.store.redis import RedisClient
from bot.types import Conversation, Decision, DecisionAction, DecisionResult, Incoming, Reply
from tests.support.fake_openai import FakeOpenAI
from tools import Registry, builtin_tools
from tools.db import Database

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
        # Off unless a test is about them: many tests send dozens of messages as one user.
        "rate_limit_user_per_minute": 0,
        "rate_limit_workspace_per_minute": 0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def start_process(
    settings: Settings,
    permissions: Permissions,
    db: Database,
    *,
    tools: Registry | None = None,
    audit: AuditSink | None = None,
) -> Runtime:
    """One propbot 'process': its own store client (on the settings' Redis, or in memory) and model client,
    wired by the composition root's own `assemble`."""
    opened = open_store(settings.redis_url, history_ttl=settings.history_ttl)
    model = OpenAIChatModel(model_config(settings))
    registry = tools or builtin_tools()
    sink = audit or LogAudit()
    core = assemble(settings, opened.store, db, model, registry, permissions, sink, opened.redis)
    return Runtime(settings, opened.store, db, model, registry, permissions, core, sink, opened.redis)


async def stop_process(process: Runtime) -> None:
    await process.model.close()
    await process.store.close()


@dataclass
class Harness:
    settings: Settings
    fake: FakeOpenAI
    process: Runtime
    extra: list[Runtime] = field(default_factory=list)

    @property
    def core(self) -> CoreParts:
        return self.process.core

    @property
    def agent(self) -> Agent:
        return self.process.agent

    @property
    def desk(self) -> ApprovalDesk:
        return self.process.desk

    @property
    def store(self) -> Store:
        return self.process.store

    @property
    def db(self) -> Database:
        return self.process.db

    @property
    def permissions(self) -> Permissions:
        return self.process.permissions

    @property
    def redis(self) -> RedisClient:
        """The process's one Redis client (a harness built with `redis=False` has none)."""
        assert self.process.redis is not None, "this harness runs in memory"
        return self.process.redis

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
        self, approval_id: str, user: str, action: str = "approve", process: Runtime | None = None
    ) -> DecisionResult:
        decision = Decision(
            approval_id=approval_id, user=user, action=DecisionAction(action), platform="slack", workspace="T1"
        )
        return await (process or self.process).desk.decide(decision)

    async def another_process(self, permissions: str | None = None, audit: AuditSink | None = None) -> Runtime:
        """A second process on the same Redis and database, with its own permissions file when `permissions`
        is given (an edit deployed while approvals wait)."""
        perms = self.permissions if permissions is None else parse_permissions(permissions)
        process = start_process(self.settings, perms, self.db, tools=self.process.registry, audit=audit)
        self.extra.append(process)
        return process


class AuditList:
    """An audit sink that keeps what it is given, for tests to read."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


MakeHarness = Callable[..., "AsyncIterator[Harness]"]


@pytest.fixture
async def make_harness(
    fake_openai: FakeOpenAI, redis_url: str, database: Database
) -> AsyncIterator[Callable[..., Any]]:
    built: list[Harness] = []

    async def make(
        redis: bool = True,
        permissions: str = PERMISSIONS_YAML,
        url: str | None = None,
        tools: Registry | None = None,
        audit: AuditSink | None = None,
        **overrides: Any,
    ) -> Harness:
        """`url` points the harness at another Redis (e.g. the suite's cluster); `tools` and `audit` replace
        the built-in tools and the log-only audit."""
        settings = test_settings(fake_openai, redis_url=(url or redis_url) if redis else None, **overrides)
        perms = parse_permissions(permissions, allow_self_approval=settings.allow_self_approval)
        harness = Harness(settings, fake_openai, start_process(settings, perms, database, tools=tools, audit=audit))
        built.append(harness)
        return harness

    yield make
    for harness in built:
        for process in [harness.process, *harness.extra]:
            await stop_process(process)
