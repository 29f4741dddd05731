"""Who belongs to which directory group, for the permissions file's `groups:` entries: Slack user groups, Entra ID
groups and verified e-mail addresses, as the platforms' directories say (an adapter offers its directory to the
gate; see `GroupSource`).

A membership is looked up once and kept for every process in the store's notes: looked up again when it is older
than a fifth of `max_age`, and never used when older than `max_age`. A look-up that fails never widens access: the
last known membership is kept until it is `max_age` old, then the person has none (their user entry, their
workspace's `*` or the default role apply) and the log says so. Nothing is looked up for a platform the file names
no group of (and no e-mail entry), so a deployment without groups pays nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from bot.core.permissions import NO_MEMBERSHIP, Membership, Permissions
from bot.errors import StoreUnavailable
from bot.store.base import Notes

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = 300.0
REFRESH_SHARE: Final = 0.2  # looked up again after this share of max_age
RETRY_SHARE: Final = 0.05  # after a failed look-up, not asked again for this share of max_age


class GroupSource(Protocol):
    """A platform's directory, for one person: which of `groups` (entries of the permissions file, of this
    person's team or tenant) they are in, and their verified e-mail address when `email` is asked for. Raises
    when the directory cannot be asked; an unknown person is an empty Membership."""

    async def membership(self, user_id: str, team: str, groups: list[str], email: bool) -> Membership: ...


def _note_key(principal: str) -> str:
    return f"directory:{principal}"


class Memberships:
    def __init__(
        self,
        notes: Notes | None,
        permissions: Callable[[], Permissions],
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.notes = notes
        self.permissions = permissions  # the rules in force, which may be reloaded
        self.max_age = max_age
        self.clock = clock
        self.sources: dict[str, GroupSource] = {}
        self._known: dict[str, tuple[Membership, float]] = {}  # this process's view: membership, looked up at
        self._failed_at: dict[str, float] = {}  # when a look-up last failed, per person

    def add_source(self, platform: str, source: GroupSource) -> None:
        self.sources[platform] = source

    def known(self, principal: str) -> Membership:
        """The membership this process last saw for `principal`, while it is within the bound; else none."""
        found = self._known.get(principal)
        if found is None or self.clock() - found[1] > self.max_age:
            return NO_MEMBERSHIP
        return found[0]

    async def refresh(self, principal: str) -> Membership:
        """The person's membership as of now (within the bound), looked up when the shared copy is old."""
        platform, _, rest = principal.partition(":")
        team, _, user_id = rest.rpartition(":")
        rules = self.permissions()
        groups = [g for g in rules.directory_entries(platform) if g.split(":")[1] == team]
        if not groups and not rules.uses_email:
            self._known.pop(principal, None)
            return NO_MEMBERSHIP
        shared = await self.read_shared(principal)
        now = self.clock()
        if shared is not None and now - shared[1] < self.max_age * REFRESH_SHARE:
            return self._keep(principal, *shared)
        failed = self._failed_at.get(principal)
        if failed is not None and now - failed < self.max_age * RETRY_SHARE:
            # Asked moments ago and the directory did not answer: not every check of one request asks again.
            return self.known(principal)
        source = self.sources.get(platform)
        try:
            if source is None:
                raise LookupError(f"no {platform} directory is configured")
            found = await source.membership(user_id, team, groups, rules.uses_email)
        except Exception as exc:
            self._failed_at[principal] = now
            return self._failed(principal, shared, exc)
        self._failed_at.pop(principal, None)
        await self.write_shared(principal, found, now)
        return self._keep(principal, found, now)

    async def forget(self, principals: Iterable[str]) -> None:
        """Drop what is known of these people (a Slack group changed): their next check looks them up."""
        for principal in principals:
            self._known.pop(principal, None)
            self._failed_at.pop(principal, None)
            if self.notes is not None:
                try:
                    await self.notes.put_note(_note_key(principal), "", 1)
                except StoreUnavailable:
                    log.warning("could not drop the cached directory membership of %s", principal)

    def _keep(self, principal: str, membership: Membership, at: float) -> Membership:
        self._known[principal] = (membership, at)
        return membership if self.clock() - at <= self.max_age else NO_MEMBERSHIP

    def _failed(self, principal: str, shared: tuple[Membership, float] | None, exc: Exception) -> Membership:
        why = str(exc) if isinstance(exc, LookupError) else type(exc).__name__
        local = self._known.get(principal)
        last = max((x for x in (shared, local) if x is not None), key=lambda x: x[1], default=None)
        if last is not None and self.clock() - last[1] <= self.max_age:
            age = self.clock() - last[1]
            log.warning(
                "directory look-up of %s failed (%s): keeping its membership from %.0f s ago", principal, why, age
            )
            return self._keep(principal, *last)
        log.warning(
            "directory look-up of %s failed (%s): no group or e-mail role until it answers (their user entry, "
            "their workspace's * or the default role apply)",
            principal,
            why,
        )
        self._known.pop(principal, None)
        return NO_MEMBERSHIP

    async def read_shared(self, principal: str) -> tuple[Membership, float] | None:
        if self.notes is None:
            return self._known.get(principal)
        try:
            raw = await self.notes.get_note(_note_key(principal))
        except StoreUnavailable:
            return self._known.get(principal)
        if not raw:
            return None
        data = json.loads(raw)
        return Membership(frozenset(data["groups"]), data.get("email")), float(data["at"])

    async def write_shared(self, principal: str, membership: Membership, at: float) -> None:
        if self.notes is None:
            return
        value = json.dumps({"groups": sorted(membership.groups), "email": membership.email, "at": at})
        try:
            await self.notes.put_note(_note_key(principal), value, self.max_age)
        except StoreUnavailable:
            log.warning("could not share the directory membership of %s; this process keeps it", principal)
