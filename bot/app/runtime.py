"""The composition root: everything a process needs, built from Settings, closed in one place."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app.services import tool_services
from bot.config import Settings
from bot.core.agent import Agent, TurnLimits
from bot.core.approvals import ApprovalDesk
from bot.core.directory import Memberships
from bot.core.gate import Gate
from bot.core.history import TokenCounter
from bot.core.loop import DEFAULT_SYSTEM_PROMPT, LoopLimits, ToolLoop
from bot.core.permissions import Permissions, load_permissions
from bot.core.rate_limit import RateLimiter
from bot.core.surfaces import Surfaces
from bot.core.tool_cache import ToolCache
from bot.core.tool_runner import ToolRunner
from bot.core.transcript import Transcript
from bot.errors import ConfigError
from bot.ingress.dispatch import CoreParts, Documents
from bot.llm import ChatModel, ModelConfig, OpenAIChatModel
from bot.observability.audit import AuditEvent, AuditSink, FanoutAudit, LogAudit
from bot.observability.audit_stream import RedisStreamAudit, read_audit
from bot.store import Store
from bot.store.base import Notes
from bot.store.factory import open_store
from bot.store.redis import REDIS_ERRORS, RedisClient
from tools import BUILTIN_REGISTRIES, Registry, ToolDefinitionError, load_registry
from tools.db import Database
from tools.documents.mail_outbox import email_deliverer
from tools.outbox import EMAIL
from tools.properties import property_choices

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    db: Database
    model: ChatModel
    registry: Registry
    permissions: Permissions
    core: CoreParts
    audit: AuditSink = field(default_factory=LogAudit)
    # The process's one Redis client (the store's), shared by the turn queue and the audit stream.
    redis: RedisClient | None = None

    @property
    def agent(self) -> Agent:
        return self.core.agent

    @property
    def desk(self) -> ApprovalDesk:
        return self.core.desk

    @property
    def surfaces(self) -> Surfaces:
        return self.core.surfaces

    @property
    def gate(self) -> Gate:
        return self.core.gate

    async def close(self) -> None:
        await self.model.close()
        await self.store.close()
        await self.db.close()


def model_config(settings: Settings) -> ModelConfig:
    return ModelConfig(
        api_key=settings.openai_api_key,
        model=settings.openai_model,
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout,
        max_attempts=settings.openai_max_attempts,
        deadline=settings.openai_deadline,
        temperature=settings.openai_temperature,
        stream=settings.openai_stream,
        failure_threshold=settings.circuit_failure_threshold,
        cooldown=settings.circuit_cooldown,
        prompt_cache_key=_cache_key_wanted(settings),
    )


def _cache_key_wanted(settings: Settings) -> bool:
    """OPENAI_PROMPT_CACHE_KEY, or when unset: on for OpenAI's own API only (another server may refuse the field)."""
    if settings.openai_prompt_cache_key is not None:
        return settings.openai_prompt_cache_key
    base = settings.openai_base_url
    return base is None or base.rstrip("/").startswith("https://api.openai.com")


def assemble(
    settings: Settings,
    store: Store,
    db: Database,
    model: ChatModel,
    registry: Registry,
    permissions: Permissions,
    audit: AuditSink,
    redis: RedisClient | None = None,
) -> CoreParts:
    """Wire the core from its parts: each part gets what it uses, and only this function reads Settings. The one
    gate every door asks is made here, from the permissions file and the allow-lists."""
    counter = TokenCounter(settings.tokenizer_encoding)
    gate = Gate(
        permissions,
        registry.names,
        {"slack": settings.allowed_slack_teams, "teams": settings.allowed_tenants},
    )
    gate.memberships = Memberships(store, lambda: gate.permissions, settings.directory_max_age)
    services = tool_services(settings, db, audit)
    runner = ToolRunner(
        registry,
        gate,
        store,
        db,
        audit,
        approval_ttl=settings.approval_ttl,
        max_parallel=settings.max_parallel_tools,
        cache=ToolCache(store),
        tool_slots=db.connections,
        services=services,
    )
    prompt = settings.system_prompt or DEFAULT_SYSTEM_PROMPT
    # What of the budget the history may fill: a request also carries the system prompt and the tool schemas (at
    # most all of them). Kept within this, the history is not trimmed again request by request.
    fixed = counter.fixed({"role": "system", "content": prompt}) + counter.tools(registry.schemas(registry.names()))
    transcript = Transcript(store, counter, max(settings.history_token_budget - fixed, 200), settings.dedupe_ttl)
    loop = ToolLoop(
        model,
        registry,
        gate,
        runner,
        counter,
        LoopLimits(max_rounds=settings.max_tool_rounds, token_budget=settings.history_token_budget),
        prompt,
    )
    limiter = RateLimiter(
        store,
        audit,
        per_user=settings.rate_limit_user_per_minute,
        per_workspace=settings.rate_limit_workspace_per_minute,
    )
    limits = TurnLimits(max_message_chars=settings.max_message_chars, dedupe_ttl=settings.dedupe_ttl)
    agent = Agent(store, transcript, loop, limiter, limits)
    desk = ApprovalDesk(store, store, registry, gate, runner, audit, transcript, loop)
    surfaces = build_surfaces(desk, gate, db, audit, redis, store)
    deliverers = {EMAIL: email_deliverer(services["notifier"])}
    return CoreParts(agent, desk, gate, surfaces, store, services["outbox"], documents_of(services), deliverers)


def documents_of(services: dict[str, Any]) -> Documents:
    """What `GET /documents/<id>` and the adapters' uploads read: the tools' document store, by id."""

    async def read(document_id: str) -> tuple[str, bytes] | None:
        store = services.get("documents")  # read when asked: the services can be given after assembly
        found = await store.get(document_id) if store is not None else None
        return (found[0].content_type, found[1]) if found is not None else None

    return read


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


def open_database(url: str, pool_size: int | None = None) -> Database:
    try:
        return Database(url, pool_size=pool_size)
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL should be a SQLAlchemy URL for SQLite or PostgreSQL: {exc}") from None


async def build_runtime(settings: Settings, *, seed: bool = True, listeners: Sequence[AuditSink] = ()) -> Runtime:
    """Build and start every part; raises ConfigError / PermissionsError with one clear line."""
    permissions = load_permission_rules(settings)
    tools = load_tools(settings)
    opened = open_store(settings.redis_url, history_ttl=settings.history_ttl)
    db = open_database(settings.database_url, settings.database_pool())
    try:
        await db.start(seed=seed)
    except Exception as exc:
        await opened.store.close()
        await db.close()
        # The driver's message can carry the URL and its password: name the error class only.
        raise ConfigError(f"DATABASE_URL: cannot open the database ({type(exc).__name__})") from None
    model = OpenAIChatModel(model_config(settings))
    # A listener shows each event to a person already (the terminal chat); logging it too printed it twice.
    sinks: list[AuditSink] = [*listeners] if listeners else [LogAudit()]
    if opened.redis is not None:
        sinks.append(RedisStreamAudit(opened.redis))
    audit: AuditSink = FanoutAudit(sinks) if len(sinks) > 1 else sinks[0]
    core = assemble(settings, opened.store, db, model, tools, permissions, audit, opened.redis)
    return Runtime(settings, opened.store, db, model, tools, permissions, core, audit, opened.redis)


# What a person's home page lists as their recent actions: the decisions and requests, not every lookup.
HOME_ACTIONS = frozenset({"approval_requested", "approved", "cancelled"})


def build_surfaces(
    desk: ApprovalDesk, gate: Gate, db: Database, audit: AuditSink, redis: RedisClient | None, notes: Notes
) -> Surfaces:
    async def recent(user: str, limit: int) -> list[AuditEvent]:
        if redis is None:
            return []
        try:
            return list(reversed(await read_audit(redis, user=user, kinds=HOME_ACTIONS, limit=limit)))
        except REDIS_ERRORS:
            return []

    async def choices(query: str) -> list[tuple[str, str]]:
        return await property_choices(db, query)

    return Surfaces(
        desk.approvals, gate, desk.registry, desk.runner, audit, recent=recent, choices=choices, notes=notes
    )
