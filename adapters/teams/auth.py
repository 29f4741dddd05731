"""Who may talk to propbot on Teams, and the bot's own Bot Framework token, fetched without blocking.

Inbound: botframework-connector validates each request's JWT (issuer, signature against the published keys,
audience = our app id, the `serviceurl` claim). Local mode has no app id, so nothing is authenticated: it
serves loopback peers only. Outbound: botframework-connector would get the bot's token with msal, and msal
does its HTTP with `requests` on the caller's thread, which is the event loop (`signed_session` runs there,
once per connector client, so at first use and again for every new conversation). propbot fetches the token
itself with aiohttp (the OAuth 2.0 client-credentials grant msal performs for an app id and secret) and
hands botframework a credential that only returns it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import aiohttp
from botbuilder.integration.aiohttp import ConfigurationServiceClientCredentialFactory
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)

from adapters.teams.config import TeamsConfig
from bot.errors import ConfigError

log = logging.getLogger(__name__)

WILDCARD: Final = "*"  # TEAMS_ALLOWED_TENANTS: any tenant

# Refresh this long before the token expires, so a call in flight never carries an expired one.
REFRESH_MARGIN = 300.0
# Seconds a request's token validation may take (fetching the signing keys included) before it is answered 503.
AUTH_TIMEOUT = 10.0
TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=15)


class AuthConfig:
    """The attribute names ConfigurationBotFrameworkAuthentication reads (it ignores the environment)."""

    def __init__(self, config: TeamsConfig) -> None:
        self.APP_ID = config.app_id
        self.APP_PASSWORD = config.app_password
        # The SDK insists on credentials for SingleTenant/MSI even without an app id; local mode needs the
        # MultiTenant path, where an empty app id disables authentication.
        self.APP_TYPE = config.app_type if config.app_id else "MultiTenant"
        self.APP_TENANTID = config.tenant_id
        if config.problem:
            raise ConfigError(config.problem)
        # Other clouds (and tests against local servers): any of these switches botframework to its
        # parameterized validation, which then needs them all (teams_problem made sure of that).
        if config.openid_metadata_url and config.token_issuer:
            self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = config.openid_metadata_url
            self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = config.openid_metadata_url
            self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = config.token_issuer
            self.TO_CHANNEL_FROM_BOT_LOGIN_URL = config.login_url or (
                AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
                + AuthenticationConstants.DEFAULT_CHANNEL_AUTH_TENANT
            )
            self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE


def loopback_peer(remote: str | None) -> bool:
    """Whether the TCP peer of a request is this machine (what local mode trusts, and all it trusts)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False  # no peer address (a Unix socket) or not an IP: not known to be this machine
    # On a dual-stack socket (HOST=::) an IPv4 peer arrives as ::ffff:127.0.0.1, which Python 3.11 does not
    # call loopback by itself.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


# Headers a reverse proxy or tunnel (nginx, ngrok, dev tunnels) adds. Through one, every request's TCP peer
# is the proxy on this machine, so the peer alone would let the whole internet in.
PROXY_HEADERS: Final = ("Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Host")


def local_mode_refusal(remote: str | None, headers: Mapping[str, str], service_url_is_loopback: bool) -> str | None:
    """Why local mode (no authentication at all) will not serve a request; None when it comes from this machine
    and the bot's replies would go back to this machine too."""
    if not loopback_peer(remote):
        return "the peer is not this machine"
    if any(name in headers for name in PROXY_HEADERS):
        return "it came through a proxy or tunnel"
    if not service_url_is_loopback:
        return "its serviceUrl is not on this machine"
    return None


def audience_refusal(
    channel_id: str | None, tenant: str, tenants: frozenset[str], *, authenticated: bool
) -> str | None:
    """Why an activity is not for propbot; None when it is. A valid token proves the Bot Framework sent it, not
    that a Teams user of an allowed tenant did: other channels of the same Azure Bot (Web Chat is on by default)
    let the client name its own user, and a MultiTenant app can be installed by any tenant. (Local test clients
    such as the Bot Framework Emulator use other channel ids and may send no tenant.)"""
    if authenticated and channel_id != "msteams":
        return f"channel {channel_id!r} is not Microsoft Teams"
    if authenticated and not tenant:
        return "it names no tenant"
    if WILDCARD not in tenants and tenant not in tenants:
        return f"tenant {tenant} is not in TEAMS_ALLOWED_TENANTS"
    return None


class InboundAuth:
    """botframework's JWT validation of each request, run on threads of its own with a deadline.

    The validation fetches the channel's OpenID metadata and signing keys with `requests` (at first use, daily,
    and for an unknown key id), without a timeout: on the event loop that would stall every other request,
    and on asyncio's default executor a hung key server could take every thread, and with them the DNS
    lookups of every outbound call. Here it can hold at most these few threads, and a request waits at most
    `timeout` before it is answered 503 (the Bot Framework retries)."""

    THREADS: Final = 4

    def __init__(self, authentication: BotFrameworkAuthentication, timeout: float) -> None:
        self.authentication = authentication
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="teams-auth")

    async def authenticate(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        """The claims of a valid request; PermissionError (or a JWT error) for an invalid one, TimeoutError when
        the validation could not finish in time."""
        check = self.authentication.authenticate_request(activity, auth_header)
        work = asyncio.get_running_loop().run_in_executor(self._pool, asyncio.run, check)
        return await asyncio.wait_for(work, self.timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _IssuedCredentials(AppCredentials):  # type: ignore[misc]
    """A credential holding a token propbot already fetched; botframework only reads it."""

    def __init__(self, app_id: str, oauth_scope: str, token: str) -> None:
        super().__init__(app_id=app_id, oauth_scope=oauth_scope)
        self._token = token

    def get_access_token(self, force_refresh: bool = False) -> str:
        return self._token


class AppTokens:
    """The bot's tokens per (login endpoint, scope), fetched with aiohttp and cached until shortly before
    they expire. Concurrent callers share one fetch."""

    def __init__(self, app_id: str, password: str) -> None:
        self.app_id = app_id
        self.password = password
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, login_endpoint: str, scope: str) -> str:
        key = (login_endpoint, scope)
        held = self._tokens.get(key)
        if held is not None and time.monotonic() < held[1]:
            return held[0]
        async with self._locks.setdefault(key, asyncio.Lock()):
            held = self._tokens.get(key)
            if held is not None and time.monotonic() < held[1]:
                return held[0]
            token, lifetime = await self._fetch(login_endpoint, scope)
            self._tokens[key] = (token, time.monotonic() + max(0.0, lifetime - REFRESH_MARGIN))
            return token

    async def _fetch(self, login_endpoint: str, scope: str) -> tuple[str, float]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TOKEN_TIMEOUT)
        form = {
            "grant_type": "client_credentials",
            "client_id": self.app_id,
            "client_secret": self.password,
            "scope": scope if scope.endswith("/.default") else scope.rstrip("/") + "/.default",
        }
        url = login_endpoint.rstrip("/") + "/oauth2/v2.0/token"
        try:
            async with self._session.post(url, data=form) as response:
                body: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PermissionError(f"could not get a Bot Framework token ({type(exc).__name__})") from None
        if not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            raise PermissionError(f"the login endpoint refused propbot's credentials ({error or 'no token'})")
        return str(body["access_token"]), float(body.get("expires_in") or 3600)


class CredentialFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    """What botframework asks for outbound credentials. App id + secret: a token from `AppTokens`. Managed
    identity: botframework's own credential, its (blocking) first token fetch run on a worker thread."""

    def __init__(self, config: TeamsConfig, auth_config: AuthConfig, tokens: AppTokens) -> None:
        self.config = config
        self.tokens = tokens
        self._inner = ConfigurationServiceClientCredentialFactory(auth_config)

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(app_id) and app_id == self.config.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self.config.app_id

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        if await self.is_authentication_disabled():
            return MicrosoftAppCredentials.empty()
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("credentials asked for an app id that is not propbot's")
        if self.config.app_type == "UserAssignedMSI":
            credentials: AppCredentials = await self._inner.create_credentials(
                app_id, oauth_scope, login_endpoint, validate_authority
            )
            await asyncio.to_thread(credentials.get_access_token)  # fills its cache off the event loop
            return credentials
        scope = oauth_scope or AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        token = await self.tokens.get(self._endpoint(login_endpoint), scope)
        return _IssuedCredentials(app_id, scope, token)

    def _endpoint(self, login_endpoint: str) -> str:
        endpoint = login_endpoint or (
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
            + AuthenticationConstants.DEFAULT_CHANNEL_AUTH_TENANT
        )
        if self.config.app_type == "SingleTenant" and self.config.tenant_id:
            # A single-tenant app signs in at its own tenant, not at botframework.com.
            endpoint = endpoint.rstrip("/").rsplit("/", 1)[0] + "/" + self.config.tenant_id
        return endpoint
