"""The one place that decides who may do what. Every door (a message, a click, a form, a search box, a page, a
card's refresh, a team's button, a tool that finds a record by id) asks the gate; nothing else decides.

It answers four questions, always in this order:
1. **Who is asking, and are they let in at all?** (`admit`) The person's own team or tenant must be the
   installation's, or one of the allow-lists (SLACK_ALLOWED_TEAMS, TEAMS_ALLOWED_TENANTS), or, on Slack, be in a
   Grid org the platform's directory says they belong to. A person who names no team is let in nowhere.
2. **May they use tool T?** (`may_use`, `tools_for`): their roles, from the permissions file: their own user
   entry, else the directory groups and e-mail entries they belong to (`admit` looks the membership up; see
   bot/core/directory.py), else their workspace's `*`, else the default role.
3. **May they decide approval A?** (`may_decide`): an approver's role, never one's own request (withdrawing it
   is always fine), and at execution time again (`no_longer_allowed`, which looks memberships up afresh).
4. **May they see record R?** (`may_see_approval`, `may_see`): a record of their own workspace or tenant only;
   an approval also only from its own conversation, or by its requester or someone who may decide it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from bot.core.directory import Memberships
from bot.core.permissions import Membership, Permissions, same_person
from bot.types import Approval, Caller, DecisionAction, Platform

log = logging.getLogger(__name__)

WILDCARD: Final = "*"
NOT_ADMITTED: Final = "You are not allowed to use propbot in this workspace; nothing was changed."
UNKNOWN_TEAM: Final = "unknown"
_ALLOW_LISTS: Final = {"slack": "SLACK_ALLOWED_TEAMS", "teams": "TEAMS_ALLOWED_TENANTS"}


class Directory(Protocol):
    """What a platform's directory says about a person, for the gate (the adapter offers it when it mounts)."""

    async def orgs_of(self, user_id: str) -> list[str]:
        """The organisations (Slack Enterprise Grid orgs) the platform's profile of `user_id` puts them in; [] when
        it names none or cannot be asked."""

    async def home_orgs(self, workspace: str) -> list[str]:
        """The organisations the installation `workspace` itself belongs to (its Grid org), whose people are its
        own; [] when none."""


@dataclass(frozen=True)
class Person:
    """Someone at a door, after the gate: their principal, where they asked through, and whether they are let in."""

    principal: str
    platform: Platform
    workspace: str
    admitted: bool
    name: str | None = None


# Approval views a person may have of an approval: may decide it, asked for it, or only shares its conversation.
APPROVER: Final = "approver"
REQUESTER: Final = "requester"
MEMBER: Final = "other"


class Gate:
    def __init__(
        self,
        permissions: Permissions,
        tool_names: Callable[[], Iterable[str]],
        allowed: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """`allowed`: per platform, the teams or tenants besides the installation's own whose people are let in
        (`*`: anyone). A platform not named lets in only its installation's own people (Slack) or nobody
        (Teams, whose every person comes from a tenant that must be listed)."""
        self.permissions = permissions  # replaced whole when the file is read again (bot/app/reload.py)
        self._tool_names = tool_names
        self.allowed = dict(allowed or {})
        self.directories: dict[str, Directory] = {}
        self.memberships = Memberships(None, lambda: self.permissions)

    def _of(self, user: str) -> Membership:
        return self.memberships.known(user)

    def register(self, platform: Platform, directory: Directory) -> None:
        self.directories[platform] = directory

    # -- 1. who is asking ------------------------------------------------------------------------------------
    async def admit(self, caller: Caller) -> Person:
        admitted = await self._admitted(caller)
        if not admitted:
            listing = _ALLOW_LISTS.get(caller.platform, "an allow-list")
            log.info("the gate refused %s: %s is not in %s", caller.platform, caller.user, listing)
        elif caller.platform != "console":
            await self.memberships.refresh(caller.user)  # what the checks of this request then see
        return Person(caller.user, caller.platform, caller.workspace, admitted, caller.name)

    async def _admitted(self, caller: Caller) -> bool:
        if caller.platform == "console":
            return True  # the terminal chat: whoever runs the process
        parts = caller.user.split(":", 2)  # a Teams id without an AAD object id is "29:…"
        if len(parts) != 3 or parts[0] != caller.platform or not parts[2]:
            return False
        team = parts[1]
        listed = self.allowed.get(caller.platform, frozenset())
        if caller.platform == "teams":
            # The person's tenant is the conversation's: Teams users exist only inside their tenant.
            return team == caller.workspace and (WILDCARD in listed or team in listed)
        if WILDCARD in listed or (team != UNKNOWN_TEAM and team in listed | {caller.workspace}):
            return True
        directory = self.directories.get(caller.platform)
        if team == UNKNOWN_TEAM or directory is None:
            return False
        orgs = await directory.orgs_of(parts[2])
        if not orgs:
            return False
        own = {caller.workspace, *await directory.home_orgs(caller.workspace)}
        return any(org in own | listed for org in orgs)

    # -- 2. tools -----------------------------------------------------------------------------------------------
    async def refresh(self, user: str) -> None:
        """Look up `user`'s directory membership where this process has none fresh (a turn run by a worker, whose
        door was another process's)."""
        await self.memberships.refresh(user)

    def tools_for(self, user: str) -> list[str]:
        return self.permissions.allowed_tools(user, self._tool_names(), self._of(user))

    def may_use(self, user: str, tool: str) -> bool:
        return self.permissions.may_use(user, tool, self._of(user))

    # -- 3. approvals ---------------------------------------------------------------------------------------
    def may_decide(self, user: str, approval: Approval, action: DecisionAction) -> tuple[bool, str]:
        """(allowed, why not in plain words). Withdrawing one's own request is always allowed."""
        if action is DecisionAction.CANCEL and same_person(user, approval.requested_by):
            return True, ""
        return self.permissions.may_approve(user, approval.tool, approval.requested_by, self._of(user))

    async def no_longer_allowed(self, approval: Approval) -> str | None:
        """Why an approved call may not run now, in plain words; None when it may.

        Roles can change while a request waits (up to APPROVAL_TTL, across restarts), and a call left `approved`
        by a dead process runs later still: the requester must still be allowed the tool and the approver still
        allowed to approve it, against the permissions and directory memberships in force when it runs."""
        what = approval.tool.replace("_", " ")
        for person in {approval.requested_by, approval.decided_by or ""} - {""}:
            await self.memberships.refresh(person)
        if not self.may_use(approval.requested_by, approval.tool):
            name = approval.requested_by_name or approval.requested_by
            return f"{name} is no longer allowed to use {what}; nothing was done."
        approver = approval.decided_by or ""
        if not (approver and self.may_decide(approver, approval, DecisionAction.APPROVE)[0]):
            name = approval.decided_by_name or approver or "the approver"
            return f"{name} is no longer allowed to approve {what}; nothing was done."
        return None

    def approvers(self, approval: Approval) -> list[str]:
        """Who the permissions file names as able to decide this approval."""
        return self.permissions.approvers(approval.tool, approval.requested_by)

    # -- 4. records -------------------------------------------------------------------------------------------
    @staticmethod
    def may_see(person: Person, conversation_key: str) -> bool:
        """Whether a record made in the conversation `conversation_key` (a run, a document, a notice) may be shown
        to this person: let in, and the record is of the workspace or tenant they ask through."""
        platform, _, rest = conversation_key.partition(":")
        workspace = rest.split(":", 1)[0]
        return person.admitted and platform == person.platform and workspace == person.workspace

    def may_see_approval(self, person: Person, approval: Approval, channel: str | None = None) -> str:
        """How this person may see an approval: APPROVER (may decide it), REQUESTER (may withdraw it), MEMBER
        (shown from its own conversation, `channel`), or "" (not at all: another workspace, another conversation
        and not theirs, or not let in)."""
        where = approval.conversation
        if not person.admitted or (where.platform, where.workspace) != (person.platform, person.workspace):
            return ""
        if self.permissions.may_approve(
            person.principal, approval.tool, approval.requested_by, self._of(person.principal)
        )[0]:
            return APPROVER  # a requester too, where ALLOW_SELF_APPROVAL lets them
        if same_person(person.principal, approval.requested_by):
            return REQUESTER
        return MEMBER if channel is not None and channel == where.channel else ""
