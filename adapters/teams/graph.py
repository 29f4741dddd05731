"""Microsoft Graph's side of the permissions file's directory entries for Teams: the Entra ID groups a person is in,
nested groups included (`GET /users/{id}/transitiveMemberOf/microsoft.graph.group`), and their e-mail address
(`mail`, else `userPrincipalName`). An app-only token for the person's tenant comes from msal (client credentials;
the app needs the Graph application permissions GroupMember.Read.All and User.Read.All, granted by an admin of
each tenant). The Graph and token URLs are settings, so another cloud (and the suite's fake) can serve them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
import msal  # type: ignore[import-untyped]

from bot.types import Membership

log = logging.getLogger(__name__)

PAGES: Final = 20  # of 999 groups each: a person in more is cut there (and the log says so)
TIMEOUT: Final = aiohttp.ClientTimeout(total=10)


class GraphGroups:
    """bot.core.directory.GroupSource for Teams."""

    def __init__(self, client_id: str, secret: str, graph_url: str, authority: str) -> None:
        self.client_id = client_id
        self.secret = secret
        self.graph_url = graph_url.rstrip("/")
        self.authority = authority.rstrip("/")
        parts = urlsplit(self.graph_url)
        self.scope = f"{parts.scheme}://{parts.netloc}/.default"
        self._apps: dict[str, Any] = {}  # tenant -> msal app (which keeps its token until it expires)
        self._session: aiohttp.ClientSession | None = None

    async def membership(self, user_id: str, team: str, groups: list[str], email: bool) -> Membership:
        token = await asyncio.to_thread(self._token, team)
        headers = {"Authorization": f"Bearer {token}"}
        user = quote(user_id, safe="")
        mine: set[str] = set()
        if groups:
            url: str | None = (
                f"{self.graph_url}/users/{user}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999"
            )
            for _ in range(PAGES):
                if url is None:
                    break
                page = await self._get(url, headers)
                ids = {str(g.get("id")) for g in page.get("value") or [] if isinstance(g, dict)}
                mine |= {g for g in groups if g.rsplit(":", 1)[-1] in ids}
                url = page.get("@odata.nextLink")
            else:
                log.warning("%s is in more than %d pages of groups; the rest are not read", user_id, PAGES)
        address = None
        if email:
            found = await self._get(f"{self.graph_url}/users/{user}?$select=mail,userPrincipalName", headers)
            mail = found.get("mail") or found.get("userPrincipalName")
            address = mail if isinstance(mail, str) and mail else None
        return Membership(frozenset(mine), address)

    def _token(self, tenant: str) -> str:
        app = self._apps.get(tenant)
        if app is None:
            app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self.secret,
                authority=f"{self.authority}/{tenant}",
                # A sovereign cloud or a test authority is not in Microsoft's public list.
                validate_authority=self.authority == "https://login.microsoftonline.com",
                instance_discovery=self.authority == "https://login.microsoftonline.com",
            )
            self._apps[tenant] = app
        result = app.acquire_token_for_client(scopes=[self.scope])
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str):
            error = result.get("error") if isinstance(result, dict) else "no answer"
            raise LookupError(f"no Graph token for tenant {tenant} ({error})")
        return token

    async def _get(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        async with self._session.get(url, headers=headers) as response:
            if response.status == 404:
                return {}  # a person Graph does not know is in no group
            if response.status >= 400:
                raise LookupError(f"Graph answered {response.status}")
            data = await response.json()
        return data if isinstance(data, dict) else {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
