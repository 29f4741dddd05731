"""The platforms `propbot serve` mounts, each given its own slice of the settings: only this package reads
Settings wholesale. Adapters are imported lazily, so a deployment without Teams never imports botbuilder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.app.documents import document_links
from bot.config import Settings
from bot.core.port import CorePort

if TYPE_CHECKING:
    from adapters.slack.config import SlackConfig
    from adapters.teams.config import TeamsConfig

# An adapter mounts its routes and returns an async cleanup (or None).
Mount = Callable[[web.Application, CorePort], Awaitable[Callable[[], Awaitable[None]] | None]]


def slack_config(settings: Settings) -> SlackConfig:
    from adapters.slack.config import SlackConfig

    return SlackConfig(
        bot_token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        app_token=settings.slack_app_token,
        api_url=settings.slack_api_url,
        streaming=settings.slack_streaming,
        stream_interval=settings.slack_stream_interval,
        thread_memory=settings.channel_memory == "thread",
    )


def teams_config(settings: Settings) -> TeamsConfig:
    from adapters.teams.config import TeamsConfig

    return TeamsConfig(
        app_id=settings.microsoft_app_id,
        app_password=settings.microsoft_app_password,
        app_type=settings.microsoft_app_type,
        tenant_id=settings.microsoft_app_tenant_id,
        local_mode=settings.teams_local_mode,
        allowed_tenants=settings.allowed_tenants,
        openid_metadata_url=settings.microsoft_openid_metadata_url,
        token_issuer=settings.microsoft_token_issuer,
        login_url=settings.microsoft_login_url,
        problem=settings.teams_problem(),
        streaming=settings.teams_streaming,
        stream_interval=settings.teams_stream_interval,
        thread_memory=settings.channel_memory == "thread",
        document_link=document_links(settings),
        graph_client_id=settings.graph_client_id or settings.microsoft_app_id,
        graph_client_secret=settings.graph_client_secret or settings.microsoft_app_password,
        graph_base_url=settings.graph_base_url,
        graph_authority=settings.graph_authority,
    )


def slack_mount(settings: Settings) -> Mount:
    from adapters.slack import mount

    return mount(slack_config(settings))


def teams_mount(settings: Settings, **timing: Any) -> Mount:
    """`timing`: the adapter's invoke_wait / auth_timeout, for tests that need them short."""
    from adapters.teams import mount

    return mount(teams_config(settings), **timing)


def enabled_mounts(settings: Settings) -> list[Mount]:
    mounts: list[Mount] = []
    if settings.slack_enabled:
        mounts.append(slack_mount(settings))
    # Without an app id nothing would authenticate Teams requests: unless TEAMS_LOCAL_MODE asks for it, the
    # route is not served at all (the start-up block says which platforms are on and how to turn them on).
    if settings.teams_enabled:
        mounts.append(teams_mount(settings))
    return mounts
