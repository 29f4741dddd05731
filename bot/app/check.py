"""`propbot check`: what this configuration will run with, and whether each dependency answers.

It only looks: no database file or table is created, nothing is written to Redis, and the model server
and Slack each get one read-only request (`GET /models`, `auth.test`), the first things a user's message
depends on. Each finding is one line, with the fix when something is wrong.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final, Literal, TextIO

import aiohttp
import openai
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import describe
from bot.app.runtime import TRIAL_MODE, load_permission_rules, load_tools, open_database, permissions_path
from bot.config import Settings
from bot.errors import ConfigError, PermissionsError
from bot.store.factory import make_store
from tools.db import DatabaseUnavailable

PROBE_TIMEOUT: Final = 5.0

Status = Literal["ok", "warn", "FAIL"]

# Slack's answers for a token that is wrong, revoked or belongs to a removed app.
_BAD_TOKEN: Final = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type"}
)


@dataclass(frozen=True)
class Finding:
    status: Status
    what: str
    detail: str


async def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    findings = [
        await check_model(settings),
        await check_slack(settings),
        check_teams(settings),
        await check_redis(settings),
        await check_database(settings),
        check_permissions(settings),
        Finding("ok", "tools", ", ".join(f"{spec.name} v{spec.version}" for spec in load_tools(settings).specs())),
    ]
    for f in findings:
        out.write(f"{f.status:<4} {f.what:<12} {f.detail}\n")
    failures = sum(f.status == "FAIL" for f in findings)
    out.write("all good\n" if not failures else f"{failures} problem(s)\n")
    return 0 if not failures else 1


async def check_model(settings: Settings) -> Finding:
    where = describe.model(settings)
    if not settings.openai_api_key:
        return Finding("FAIL", "model", f"{where}: OPENAI_API_KEY is not set")
    client = openai.AsyncOpenAI(
        api_key=settings.openai_api_key, base_url=settings.openai_base_url, timeout=PROBE_TIMEOUT, max_retries=0
    )
    try:
        listed = [m.id async for m in client.models.list()]
    except openai.APITimeoutError:
        return Finding("FAIL", "model", f"{where}: no answer within {PROBE_TIMEOUT:.0f}s – check OPENAI_BASE_URL")
    except openai.APIConnectionError:
        fix = "check OPENAI_BASE_URL and that the server runs" if settings.openai_base_url else "check the network"
        return Finding("FAIL", "model", f"{where}: cannot connect – {fix}")
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        return Finding("FAIL", "model", f"{where}: the key was refused ({exc.status_code}) – check OPENAI_API_KEY")
    except openai.NotFoundError:
        # Some servers (an Azure deployment URL) have no model list; a base URL without its /v1 has none either.
        return Finding(
            "warn", "model", f"{where}: GET /models answered 404 – check OPENAI_BASE_URL (often ends in /v1)"
        )
    except openai.APIStatusError as exc:
        return Finding("FAIL", "model", f"{where}: GET /models answered {exc.status_code} – is the server healthy?")
    except openai.OpenAIError as exc:
        return Finding("FAIL", "model", f"{where}: {type(exc).__name__}")
    finally:
        await client.close()
    if listed and settings.openai_model not in listed:
        shown = ", ".join(listed[:5]) + (", …" if len(listed) > 5 else "")
        return Finding("warn", "model", f"{where}: the server does not list it (it lists {shown}) – check OPENAI_MODEL")
    return Finding("ok", "model", f"{where}: answers")


async def check_slack(settings: Settings) -> Finding:
    mode = describe.slack(settings)
    if not settings.slack_bot_token:
        return Finding("ok", "slack", mode)
    # No retry handlers, unlike the serving client: a check should answer within seconds.
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=int(PROBE_TIMEOUT))
    try:
        identity = await client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown_error"))
        if error in _BAD_TOKEN:
            fix = "the SLACK_BOT_TOKEN was revoked or is wrong; reinstall the app and copy the Bot User OAuth Token"
        else:
            fix = "see https://api.slack.com/methods/auth.test#errors"
        return Finding("FAIL", "slack", f"auth.test: {error} – {fix}")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        where = describe.host_of(settings.slack_api_url)
        fix = "check the network, or SLACK_API_URL"
        return Finding("FAIL", "slack", f"auth.test: cannot reach {where} ({type(exc).__name__}) – {fix}")
    status: Status = "ok" if settings.slack_enabled else "warn"
    bot = f"@{identity.get('user')} in {identity.get('team')} ({identity.get('team_id')})"
    return Finding(status, "slack", f"{mode}; auth.test: {bot}")


def check_teams(settings: Settings) -> Finding:
    if settings.microsoft_app_id and not settings.allowed_tenants:
        fix = "list the Azure tenant ids whose users may use propbot (or *); serve refuses to start without"
        return Finding("FAIL", "teams", f"MICROSOFT_APP_ID is set but TEAMS_ALLOWED_TENANTS is not – {fix}")
    if problem := settings.teams_problem():
        # The rest of what stops serve and worker: a SingleTenant/MSI bot without its tenant, half the endpoints.
        return Finding("FAIL", "teams", problem)
    return Finding("ok", "teams", describe.teams(settings))


async def check_redis(settings: Settings) -> Finding:
    where = describe.store(settings)
    if not settings.redis_url:
        return Finding("ok", "redis", where)
    store = make_store(settings.redis_url, history_ttl=settings.history_ttl)
    try:
        reachable = await store.ping()
    finally:
        await store.close()
    return Finding("ok", "redis", f"{where}: reachable") if reachable else Finding("FAIL", "redis", "cannot be reached")


async def check_database(settings: Settings) -> Finding:
    try:
        db = open_database(settings.database_url)
    except ConfigError as exc:
        return Finding("FAIL", "database", str(exc))
    try:
        return Finding("ok", "database", f"{db.describe_url()}: {await db.survey(PROBE_TIMEOUT)}")
    except DatabaseUnavailable as exc:
        return Finding("FAIL", "database", f"{db.describe_url()}: {exc}")
    finally:
        await db.close()


def check_permissions(settings: Settings) -> Finding:
    try:
        rules = load_permission_rules(settings)
    except PermissionsError as exc:
        return Finding("FAIL", "permissions", str(exc))
    path = permissions_path(settings)
    # Trial mode gets the whole announcement: check holds back the start-up warning that would carry it.
    detail = describe.permissions(path, rules) if path is not None else TRIAL_MODE
    if unknown := rules.unknown_tools(load_tools(settings).names()):
        return Finding("FAIL", "permissions", f"{detail}; unknown tools named: {', '.join(unknown)}")
    return Finding("ok", "permissions", detail)
