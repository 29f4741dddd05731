"""`propbot check`: what this configuration will run with, and whether each dependency answers."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.config import ConfigError, Settings
from bot.permissions import PermissionsError
from bot.runtime import TRIAL_MODE, load_permission_rules, load_tools, open_database, permissions_path
from bot.store.factory import make_store


async def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    failures = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        out.write(f"{'ok  ' if ok else 'FAIL'} {what:<12} {detail}\n")

    line(
        bool(settings.openai_api_key),
        "model",
        f"{settings.openai_model} at {settings.openai_base_url or 'OpenAI'}"
        + ("" if settings.openai_api_key else " (OPENAI_API_KEY is not set)"),
    )
    registry = load_tools(settings)
    line(True, "tools", ", ".join(registry.names()))
    try:
        path = permissions_path(settings)
        permissions = load_permission_rules(settings)
        roles = ", ".join(f"{name} ({len(r.tools)} tools)" for name, r in permissions.spec.roles.items())
        unknown = permissions.unknown_tools(registry.names())
        detail = f"{path}: roles {roles}; {len(permissions.spec.users)} users"
        if path is None:
            detail = TRIAL_MODE
        line(not unknown, "permissions", detail + (f"; unknown tools named: {', '.join(unknown)}" if unknown else ""))
    except PermissionsError as exc:
        line(False, "permissions", str(exc))
    store = make_store(settings.redis_url, history_ttl=settings.history_ttl)
    try:
        if settings.redis_url:
            reachable = await store.ping()
            line(reachable, "redis", "reachable" if reachable else "cannot be reached")
        else:
            line(True, "redis", "REDIS_URL not set: in-memory state, one process only")
    finally:
        await store.close()
    try:
        db = open_database(settings.database_url)
    except ConfigError as exc:
        line(False, "database", str(exc))
    else:
        try:
            await db.start(seed=False)
            line(await db.ping(), "database", db.describe_url())
        except Exception as exc:
            line(False, "database", f"{db.describe_url()}: {type(exc).__name__}")
        finally:
            await db.close()
    slack = "enabled" if settings.slack_enabled else "off (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)"
    line(True, "slack", slack + (" in Socket Mode" if settings.slack_app_token else ""))
    teams = "app id set" if settings.microsoft_app_id else "local anonymous mode (no MICROSOFT_APP_ID)"
    line(True, "teams", teams)
    out.write("all good\n" if not failures else f"{failures} problem(s)\n")
    return 0 if not failures else 1
