"""The fake Slack Web API's directory, as documented at docs.slack.dev: `usergroups.users.list` (scope
usergroups:read; `{"ok": true, "users": [...]}`, `no_such_subteam` for a group the workspace does not have) and
the `profile.email` that `users.info` carries with users:read.email. Mixed into `FakeSlack`; the events that say a
group changed are built by `members_changed` / `group_updated`."""

from __future__ import annotations

from typing import Any


class Directory:
    def __init__(self) -> None:
        self.usergroups: dict[str, list[str]] = {}  # group id -> member user ids
        self.emails: dict[str, str] = {}  # user id -> the verified address users.info shows

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup") or "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def profile_of(self, user: str) -> dict[str, Any]:
        return {"email": self.emails[user]} if user in self.emails else {}


def members_changed(group: str, team: str, added: list[str], removed: list[str]) -> dict[str, Any]:
    """A `subteam_members_changed` event as Slack sends it (the counts and the update times included)."""
    return {
        "type": "subteam_members_changed",
        "subteam_id": group,
        "team_id": team,
        "date_previous_update": 1446670362,
        "date_update": 1492906952,
        "added_users": added,
        "added_users_count": str(len(added)),
        "removed_users": removed,
        "removed_users_count": str(len(removed)),
        "event_ts": "1492906952.000000",
    }


def group_updated(group: str, team: str, users: list[str]) -> dict[str, Any]:
    """A `subteam_updated` event: the whole group as it now is (its `users` listed)."""
    return {
        "type": "subteam_updated",
        "subteam": {
            "id": group,
            "team_id": team,
            "is_usergroup": True,
            "name": "Property managers",
            "description": None,
            "handle": "pm-managers",
            "is_external": False,
            "date_create": 1446746793,
            "date_update": 1446747767,
            "date_delete": 0,
            "auto_type": None,
            "created_by": "U060RNRCZ",
            "updated_by": "U060RNRCZ",
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
            "users": users,
            "user_count": str(len(users)),
        },
        "event_ts": "1446747767.000000",
    }
