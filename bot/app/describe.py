"""What a configuration amounts to, in words: the `propbot serve` start-up block and `propbot check` both
use these, so the two never describe the same setting differently. Nothing here carries a secret: URLs
are cut down to their host (and a database URL has its password masked by the caller)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bot.config import Settings
from bot.core.permissions import WILDCARD, Permissions

DEFAULT_MODEL_HOST = "api.openai.com"


def host_of(url: str) -> str:
    """'https://user:pw@example.com:8443/v1' -> 'example.com:8443': where it goes, never who logs in."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def model(settings: Settings) -> str:
    where = host_of(settings.openai_base_url) if settings.openai_base_url else DEFAULT_MODEL_HOST
    return f"{settings.openai_model} at {where}"


def store(settings: Settings) -> str:
    url = settings.redis_url
    if not url:
        return "memory (REDIS_URL is not set): one process only, lost on restart"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"Redis at unix socket {parts.path}"
    kind = "Redis Cluster" if "+cluster" in parts.scheme else "Redis"
    tls = " (TLS)" if parts.scheme.startswith("rediss") else ""
    db = parts.path.strip("/")
    return f"{kind}{tls} at {host_of(url)}" + (f", database {db}" if db and db != "0" else "")


def slack(settings: Settings) -> str:
    if not settings.slack_enabled:
        if settings.slack_bot_token:
            return "off: SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET nor SLACK_APP_TOKEN"
        return "off (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, or SLACK_APP_TOKEN for Socket Mode)"
    if settings.slack_app_token:
        return "Socket Mode (SLACK_APP_TOKEN): no public URL needed"
    return "HTTP: events and clicks on POST /slack/events"


def teams(settings: Settings) -> str:
    if not settings.teams_enabled:
        return "off (set MICROSOFT_APP_ID, or TEAMS_LOCAL_MODE=true for a local test client)"
    if not settings.microsoft_app_id:
        return "local mode (TEAMS_LOCAL_MODE): POST /api/messages unauthenticated, loopback peers only"
    tenants = ", ".join(sorted(settings.allowed_tenants)) or "none (TEAMS_ALLOWED_TENANTS is not set)"
    app = f"app {settings.microsoft_app_id} ({settings.microsoft_app_type})"
    return f"authenticated: POST /api/messages for {app}; tenants {tenants}"


def permissions(path: Path | None, rules: Permissions) -> str:
    """`path`: the file the rules came from, None in trial mode."""
    if path is None:
        return "TRIAL MODE (no permissions file): everyone may use and approve every tool"
    roles = []
    for name, role in rules.spec.roles.items():
        tools = "all tools" if WILDCARD in role.tools else f"{len(role.tools)} tools"
        approves = ""
        if role.approves:
            approves = ", approves all" if WILDCARD in role.approves else f", approves {len(role.approves)}"
        roles.append(f"{name} ({tools}{approves})")
    users = len(rules.spec.users)
    groups = f", {len(rules.spec.groups)} group and e-mail entries" if rules.spec.groups else ""
    default = f"; default {rules.spec.default_role}" if rules.spec.default_role else ""
    return f"{path}: roles {', '.join(roles)}; {users} user entries{groups}{default}"


def turns(settings: Settings, durable: bool, worker: bool, *, dedicated: bool = False, processes: int = 0) -> str:
    """`worker`: this process runs turns from the queue; `dedicated`: it is a `propbot worker` process;
    `processes`: the worker processes this server started beside itself."""
    if processes:
        return (
            f"durable queue in Redis; {processes} worker process(es) beside this one (WEB_CONCURRENCY="
            f"{processes + 1}), each running up to {settings.turn_concurrency} turns at once"
        )
    if dedicated:
        return f"durable queue in Redis; this worker runs up to {settings.turn_concurrency} turns at once"
    if not durable:
        why = "DURABLE_TURNS=false" if settings.redis_url else "it needs REDIS_URL"
        return f"run in this process as they arrive (no durable queue: {why})"
    if worker:
        return f"durable queue in Redis; in-process worker on ({settings.turn_concurrency} turns at once)"
    return "durable queue in Redis; in-process worker off (IN_PROCESS_WORKER=false): run `propbot worker`"
