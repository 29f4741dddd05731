"""The gate's own answers, asked directly: the Teams adapter refuses an unlisted tenant before its activity reaches
the core, so a gate that let it in would go unseen by the end-to-end tests; this is where that rule is held."""

from __future__ import annotations

import pytest

from bot.core.gate import Gate
from bot.core.permissions import parse_permissions
from bot.types import Caller
from tests.support.harness import PERMISSIONS_YAML

TOOLS = ["get_property", "schedule_maintenance"]


def gate(tenants: str) -> Gate:
    listed = frozenset(t for t in tenants.split(",") if t)
    return Gate(parse_permissions(PERMISSIONS_YAML), lambda: TOOLS, {"teams": listed, "slack": frozenset()})


@pytest.mark.parametrize(
    ("tenants", "person_tenant", "conversation_tenant", "admitted"),
    [
        ("tenant-1", "tenant-1", "tenant-1", True),
        ("tenant-1", "tenant-2", "tenant-2", False),  # a tenant not on TEAMS_ALLOWED_TENANTS
        ("", "tenant-1", "tenant-1", False),  # none listed: nobody (a Teams person always comes from a tenant)
        ("*", "tenant-9", "tenant-9", True),
        ("tenant-1,tenant-2", "tenant-2", "tenant-1", False),  # a person of one tenant in another's conversation
    ],
)
async def test_a_teams_person_is_let_in_only_from_an_allowed_tenant_of_their_own(
    tenants: str, person_tenant: str, conversation_tenant: str, admitted: bool
) -> None:
    caller = Caller(platform="teams", workspace=conversation_tenant, user=f"teams:{person_tenant}:aad-manager")
    assert (await gate(tenants).admit(caller)).admitted is admitted
