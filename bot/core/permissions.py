"""Who may use and approve which tools: platform user -> role -> tools.

The file is YAML (see README). A user key is the principal the adapters produce: `slack:<team>:<user>` or
`teams:<tenant>:<aad object id>`; `slack:<team>:*` / `teams:<tenant>:*` give a role to a whole workspace or
tenant. Old entries `teams:<aad object id>` (written before principals carried the tenant) still match that
user, in any tenant propbot serves; start-up warns about them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import PermissionsError
from bot.types import Membership, same_person

__all__ = [
    "NO_MEMBERSHIP",
    "WILDCARD",
    "Membership",
    "Permissions",
    "PermissionsFile",
    "Role",
    "load_permissions",
    "parse_permissions",
    "same_person",
]

WILDCARD = "*"


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tools: list[str] = Field(default_factory=list)
    approves: list[str] = Field(default_factory=list)


class PermissionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_role: str | None = None
    roles: dict[str, Role]
    users: dict[str, str] = Field(default_factory=dict)
    # Directory entries: "slack:<team>:usergroup:<id>", "teams:<tenant>:group:<Entra object id>", "email:<address>"
    # and "email:*@<domain>" (bot/core/directory.py says who is in them).
    groups: dict[str, str] = Field(default_factory=dict)

    def dangling_roles(self) -> list[tuple[list[str], str]]:
        """(location, problem) for every role named but not defined, and every group entry of no known kind."""
        found: list[tuple[list[str], str]] = []
        if self.default_role is not None and self.default_role not in self.roles:
            found.append((["default_role"], f"default_role {self.default_role!r} is not one of the roles"))
        for section, entries in (("users", self.users), ("groups", self.groups)):
            for who, role in entries.items():
                if role not in self.roles:
                    problem = f"{section[:-1]} {who!r} has role {role!r}, which is not defined under roles"
                    found.append(([section, who], problem))
        for entry in self.groups:
            if group_kind(entry) is None:
                problem = (
                    f"group {entry!r} is not 'slack:<team>:usergroup:<id>', 'teams:<tenant>:group:<id>', "
                    "'email:<address>' or 'email:*@<domain>'"
                )
                found.append((["groups", entry], problem))
        return found


def group_kind(entry: str) -> str | None:
    """ "usergroup", "group" or "email" for a well-formed directory entry; None otherwise."""
    parts = entry.split(":")
    if len(parts) == 4 and parts[0] == "slack" and parts[2] == "usergroup" and parts[1] and parts[3]:
        return "usergroup"
    if len(parts) == 4 and parts[0] == "teams" and parts[2] == "group" and parts[1] and parts[3]:
        return "group"
    if len(parts) == 2 and parts[0] == "email" and "@" in parts[1] and not parts[1].startswith("@"):
        return "email"
    return None


def email_matches(pattern: str, address: str) -> bool:
    """`pattern` is an `email:` entry's address or `*@domain`; addresses compare without case."""
    pattern, address = pattern.lower(), address.lower()
    if pattern.startswith("*@"):
        return address.endswith(pattern[1:]) and address.count("@") == 1
    return pattern == address


NO_MEMBERSHIP: Final = Membership()


class Permissions:
    def __init__(self, spec: PermissionsFile, *, allow_self_approval: bool = False) -> None:
        self.spec = spec
        self.allow_self_approval = allow_self_approval

    @classmethod
    def open_to_all(cls, *, allow_self_approval: bool = False) -> Permissions:
        """Everyone may use and approve everything: for local trial without a permissions file."""
        role = Role(tools=[WILDCARD], approves=[WILDCARD])
        return cls(PermissionsFile(default_role="all", roles={"all": role}), allow_self_approval=allow_self_approval)

    def roles_of(self, user: str, member_of: Membership | None = None) -> list[str]:
        """The roles `user` has, in this order: their own user entry alone; else every group and e-mail entry
        `member_of` matches (the union); else their workspace's or tenant's `*`; else `default_role`."""
        if user in self.spec.users:
            return [self.spec.users[user]]
        platform, _, rest = user.partition(":")
        if platform == "teams" and rest.count(":") == 1:
            legacy = f"teams:{rest.split(':', 1)[1]}"
            if legacy in self.spec.users:
                return [self.spec.users[legacy]]
        if member_of is not None and (found := self._by_directory(member_of)):
            return found
        workspace = user.rsplit(":", 1)[0] + ":" + WILDCARD
        if workspace in self.spec.users:
            return [self.spec.users[workspace]]
        return [self.spec.default_role] if self.spec.default_role else []

    def role_of(self, user: str, member_of: Membership | None = None) -> str | None:
        """The roles of `user` as one line ("manager, staff"), for logs and `propbot check`."""
        return ", ".join(self.roles_of(user, member_of)) or None

    def _by_directory(self, member_of: Membership) -> list[str]:
        roles: list[str] = []
        for entry, role in self.spec.groups.items():
            kind = group_kind(entry)
            if kind == "email":
                hit = member_of.email is not None and email_matches(entry.split(":", 1)[1], member_of.email)
            else:
                hit = entry in member_of.groups
            if hit and role not in roles:
                roles.append(role)
        return roles

    def directory_entries(self, platform: str) -> list[str]:
        """The group entries of `platform` ("slack", "teams"); e-mail entries are `uses_email`."""
        return [g for g in self.spec.groups if g.startswith(platform + ":")]

    @property
    def uses_email(self) -> bool:
        return any(group_kind(g) == "email" for g in self.spec.groups)

    def legacy_teams_entries(self) -> list[str]:
        """`teams:<aad id>` entries: they name no tenant, so they match that id in every allowed tenant."""
        return sorted(u for u in self.spec.users if u.startswith("teams:") and u.count(":") == 1)

    def _role(self, user: str, member_of: Membership | None = None) -> Role:
        """Every tool and approval the person's roles give, as one role (the union)."""
        tools: list[str] = []
        approves: list[str] = []
        for name in self.roles_of(user, member_of):
            role = self.spec.roles.get(name)
            if role is not None:
                tools += role.tools
                approves += role.approves
        return Role(tools=tools, approves=approves)

    def allowed_tools(self, user: str, available: Iterable[str], member_of: Membership | None = None) -> list[str]:
        role = self._role(user, member_of)
        return sorted(t for t in available if WILDCARD in role.tools or t in role.tools)

    def may_use(self, user: str, tool: str, member_of: Membership | None = None) -> bool:
        role = self._role(user, member_of)
        return WILDCARD in role.tools or tool in role.tools

    def may_approve(
        self, user: str, tool: str, requested_by: str, member_of: Membership | None = None
    ) -> tuple[bool, str]:
        """(allowed, reason in plain words when not)."""
        role = self._role(user, member_of)
        if not (WILDCARD in role.approves or tool in role.approves):
            return False, self._not_an_approver(tool)
        if same_person(user, requested_by) and not self.allow_self_approval:
            return False, "You cannot approve your own request; ask another approver."
        return True, ""

    def approvers(self, tool: str, requested_by: str) -> list[str]:
        """The people the file names (not `*` entries, not the default role) who may approve `tool` for this
        requester, e.g. to show them an approval card's buttons."""
        return sorted(
            user
            for user in self.spec.users
            if not user.endswith(":" + WILDCARD) and self.may_approve(user, tool, requested_by)[0]
        )

    def approver_roles(self, tool: str) -> list[str]:
        return sorted(name for name, r in self.spec.roles.items() if WILDCARD in r.approves or tool in r.approves)

    def _not_an_approver(self, tool: str) -> str:
        # Roles, not people: the file names platform principals (slack:T1:U1), which read as noise in a
        # message and which the adapters would have to turn into mentions.
        action = tool.replace("_", " ")
        roles = self.approver_roles(tool)
        if not roles:
            return f"You are not allowed to approve {action}, and no role may; an administrator can add it to a role."
        named = roles[0] if len(roles) == 1 else f"{', '.join(roles[:-1])} or {roles[-1]}"
        return f"You are not allowed to approve {action}; ask someone with the {named} role."

    def unknown_tools(self, known: Iterable[str]) -> list[str]:
        known_set = set(known) | {WILDCARD}
        named = {t for r in self.spec.roles.values() for t in (*r.tools, *r.approves)}
        return sorted(named - known_set)


def load_permissions(path: Path, *, allow_self_approval: bool = False) -> Permissions:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PermissionsError(f"{path}: cannot read the permissions file ({exc.strerror})") from None
    return parse_permissions(text, str(path), allow_self_approval=allow_self_approval)


def parse_permissions(text: str, source: str = "<permissions>", *, allow_self_approval: bool = False) -> Permissions:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PermissionsError(f"{source}: {where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise PermissionsError(f"{source}: line 1: expected a mapping with 'roles' (and 'users', 'default_role')")
    try:
        spec = PermissionsFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        line = _line_of(node, loc)
        path_text = ".".join(loc) or "(top level)"
        raise PermissionsError(f"{source}: line {line}: {path_text}: {err['msg']}") from None
    if dangling := spec.dangling_roles():
        loc, problem = dangling[0]
        raise PermissionsError(f"{source}: line {_line_of(node, loc)}: {problem}")
    return Permissions(spec, allow_self_approval=allow_self_approval)


def _line_of(node: Any, loc: list[str]) -> int:
    """The 1-based line of the YAML node at `loc`, or of the deepest parent that exists."""
    line = int(node.start_mark.line) + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            match = node.value[int(part)]
        else:
            match = None
        if match is None:
            break
        node = match
        line = int(node.start_mark.line) + 1
    return line
