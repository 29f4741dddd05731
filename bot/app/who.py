"""`propbot check --who <principal>`: how one person's roles resolve under the permissions file, with the
directory membership the running bot last looked up for them (from Redis, when REDIS_URL is set)."""

from __future__ import annotations

import time
from typing import TextIO

from bot.app.runtime import load_permission_rules, load_tools
from bot.config import Settings
from bot.core.directory import Memberships
from bot.core.permissions import NO_MEMBERSHIP, Membership
from bot.errors import PermissionsError, StoreUnavailable
from bot.store.factory import make_store


async def explain(settings: Settings, principal: str, out: TextIO) -> int:
    try:
        rules = load_permission_rules(settings)
    except PermissionsError as exc:
        out.write(f"FAIL permissions {exc}\n")
        return 1
    membership, source = NO_MEMBERSHIP, "none looked up"
    store = make_store(settings.redis_url, history_ttl=settings.history_ttl)
    try:
        shared = await Memberships(store, lambda: rules, settings.directory_max_age).read_shared(principal)
    except StoreUnavailable:
        shared, source = None, "the store did not answer"
    finally:
        await store.close()
    if shared is not None:
        membership, at = shared
        source = f"looked up {time.time() - at:.0f} s ago by the running bot"
    entry = rules.spec.users.get(principal)
    roles = rules.roles_of(principal, membership)
    tools = rules.allowed_tools(principal, load_tools(settings).names(), membership)
    lines = [
        principal,
        f"  user entry   {entry or 'none'}" + ("  (it wins: groups are not consulted)" if entry else ""),
        f"  directory    {_membership(membership)} ({source})",
        f"  roles        {', '.join(roles) or 'none'}  (order: user entry; groups and e-mail; the workspace's *;"
        " default_role)",
        f"  tools        {', '.join(tools) or 'none'}",
    ]
    out.write("\n".join(lines) + "\n")
    return 0


def _membership(membership: Membership) -> str:
    groups = ", ".join(sorted(membership.groups)) or "no groups"
    return f"{groups}; e-mail {membership.email or 'unknown'}"
