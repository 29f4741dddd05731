"""The composition root: everything a process needs, built from Settings, closed in one place."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Settings
from bot.core.agent import Agent
from bot.core.permissions import Permissions, load_permissions
from bot.core.tool_cache import ToolCache
from bot.errors import ConfigError
from bot.llm.openai_model import LLMClient
from bot.observability.audit import AuditSink, FanoutAudit, LogAudit
from bot.observability.audit_stream import RedisStreamAudit
from bot.store import Store
from bot.store.factory import make_store
from bot.store.redis_store import RedisStore
from tools import BUILTIN_REGISTRIES, Registry, ToolDefinitionError, load_registry
from tools.db import Database

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    db: Database
    llm: LLMClient
    registry: Registry
    permissions: Permissions
    agent: Agent
    audit: AuditSink = field(default_factory=LogAudit)

    async def close(self) -> None:
        await self.llm.close()
        await self.store.close()
        await self.db.close()


def load_tools(settings: Settings) -> Registry:
    try:
        return load_registry([*BUILTIN_REGISTRIES, *settings.extra_tool_modules])
    except ImportError as exc:
        raise ConfigError(f"TOOL_MODULES should name importable modules: {exc}") from None
    except ToolDefinitionError as exc:
        raise ConfigError(f"TOOL_MODULES: {exc}") from None


DEFAULT_PERMISSIONS_FILE = Path("permissions.yml")
TRIAL_MODE = (
    "TRIAL MODE: no permissions file (PERMISSIONS_FILE is unset and there is no ./permissions.yml): every user "
    "may use and approve every tool; self-approval still needs ALLOW_SELF_APPROVAL=true. Set PERMISSIONS_FILE "
    "before inviting real users."
)


def permissions_path(settings: Settings) -> Path | None:
    """The permissions file to load, or None for trial mode. A file that is named must exist: a typo in
    PERMISSIONS_FILE must stop start-up, never open every tool to everyone."""
    if settings.permissions_file is not None:
        return settings.permissions_file
    return DEFAULT_PERMISSIONS_FILE if DEFAULT_PERMISSIONS_FILE.exists() else None


def load_permission_rules(settings: Settings) -> Permissions:
    path = permissions_path(settings)
    if path is None:
        log.warning(TRIAL_MODE)
        return Permissions.open_to_all(allow_self_approval=settings.allow_self_approval)
    permissions = load_permissions(path, allow_self_approval=settings.allow_self_approval)
    for entry in permissions.legacy_teams_entries():
        log.warning(
            "%s: %r names no tenant, so it matches that user in every allowed tenant; write it as "
            "teams:<tenant id>:<AAD object id>",
            path,
            entry,
        )
    return permissions


def open_database(url: str) -> Database:
    try:
        return Database(url)
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL should be a SQLAlchemy URL for SQLite or PostgreSQL: {exc}") from None


async def build_runtime(settings: Settings, *, seed: bool = True, listeners: Sequence[AuditSink] = ()) -> Runtime:
    """Build and start every part; raises ConfigError / PermissionsError with one clear line."""
    permissions = load_permission_rules(settings)
    tools = load_tools(settings)
    store = make_store(settings.redis_url, history_ttl=settings.history_ttl)
    db = open_database(settings.database_url)
    try:
        await db.start(seed=seed)
    except Exception as exc:
        await store.close()
        await db.close()
        # The driver's message can carry the URL and its password: name the error class only.
        raise ConfigError(f"DATABASE_URL: cannot open the database ({type(exc).__name__})") from None
    llm = LLMClient(settings)
    # A listener shows each event to a person already (the terminal chat); logging it too printed it twice.
    sinks: list[AuditSink] = [*listeners] if listeners else [LogAudit()]
    if isinstance(store, RedisStore):
        sinks.append(RedisStreamAudit(store.client))
    audit: AuditSink = FanoutAudit(sinks) if len(sinks) > 1 else sinks[0]
    agent = Agent(settings, store, llm, tools, permissions, db, audit=audit, cache=ToolCache(store))
    return Runtime(settings, store, db, llm, tools, permissions, agent, audit)
