"""Slack's side of the permissions file's directory entries: who is in a user group (`usergroups.users.list`,
scope usergroups:read) and a person's e-mail address (`users.info`, scope users:read.email; Slack verifies it),
and the events that say a group changed (`subteam_members_changed`, `subteam_updated`), after which the people
it names are looked up again."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.web import attempt, call
from bot.types import Membership

log = logging.getLogger(__name__)

GROUP_TTL: Final = 60.0  # seconds a group's member list is reused for other people's look-ups in this process


class SlackGroups:
    """bot.core.directory.GroupSource for Slack."""

    def __init__(self, client: AsyncWebClient, ttl: float = GROUP_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._members: dict[str, tuple[frozenset[str], float]] = {}

    async def membership(self, user_id: str, team: str, groups: list[str], email: bool) -> Membership:
        mine = [g for g in groups if user_id in await self._members_of(g.rsplit(":", 1)[-1], team)]
        return Membership(frozenset(mine), await self._email(user_id) if email else None)

    async def _members_of(self, group: str, team: str) -> frozenset[str]:
        cached = self._members.get(group)
        if cached is not None and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        data, error = await attempt(self.client, "usergroups.users.list", usergroup=group, team_id=team)
        if error == "no_such_subteam":
            # Slack answered: the group does not exist (deleted, or a typo in the file). It gives no one anything,
            # and the other entries still count.
            log.warning("Slack user group %s does not exist: its entry in the permissions file gives no role", group)
            data = {}
        elif data is None:
            raise LookupError(f"Slack did not list the members of user group {group} ({error})")
        users = data.get("users")
        members = frozenset(u for u in users if isinstance(u, str)) if isinstance(users, list) else frozenset()
        self._members[group] = (members, time.monotonic())
        return members

    async def _email(self, user_id: str) -> str | None:
        data = await call(self.client, "users.info", user=user_id)
        if data is None:
            raise LookupError(f"Slack did not answer users.info for {user_id}")
        user = _mapping(data.get("user"))
        profile = _mapping(user.get("profile"))
        address = profile.get("email")
        # A deleted account keeps its profile; it has no e-mail role.
        return address if isinstance(address, str) and address and not user.get("deleted") else None

    def forget_group(self, group: str) -> None:
        self._members.pop(group, None)

    def register(self, bolt: AsyncApp, changed: Callable[[list[str]], Awaitable[None]]) -> None:
        """Listen for group changes; `changed` gets the principals to look up again."""

        async def on_members_changed(event: dict[str, Any]) -> None:
            group, team = str(event.get("subteam_id") or ""), str(event.get("team_id") or "")
            people = [*_ids(event.get("added_users")), *_ids(event.get("removed_users"))]
            await self._changed(group, team, people, changed)

        async def on_updated(event: dict[str, Any]) -> None:
            subteam = _mapping(event.get("subteam"))
            group, team = str(subteam.get("id") or ""), str(subteam.get("team_id") or "")
            # The event lists the group's members now; whoever left is in the list this process last saw.
            before = self._members.get(group, (frozenset(), 0.0))[0]
            await self._changed(group, team, sorted(before | set(_ids(subteam.get("users")))), changed)

        bolt.event("subteam_members_changed")(on_members_changed)
        bolt.event("subteam_updated")(on_updated)

    async def _changed(
        self, group: str, team: str, people: list[str], changed: Callable[[list[str]], Awaitable[None]]
    ) -> None:
        self.forget_group(group)
        log.info("Slack user group %s changed: %d people are looked up again", group, len(people))
        if team:
            await changed([f"slack:{team}:{user}" for user in people])


def _ids(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
