"""Who and where a Slack payload is: the installation (the conversations' workspace), the person (their own
team), and whether an event is a person's question at all."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

# Message subtypes that carry a person's new words; every other subtype is a change to the channel or a
# message (edits, deletions, joins, bot posts), not a question for the agent.
_QUESTION_SUBTYPES = frozenset({"file_share", "thread_broadcast"})


def not_a_question(event: dict[str, Any], bot_user: str | None) -> str | None:
    """Why an event is not a person asking the agent something, or None when it is."""
    subtype = event.get("subtype")
    if subtype is not None and subtype not in _QUESTION_SUBTYPES:
        return f"subtype {subtype!r} is not a new message from a person"
    # The objects mark the message whatever they hold: an `edited` without its `ts` is still an edit.
    if event.get("bot_id") or event.get("bot_profile") is not None:
        return "written by a bot (propbot's own replies included)"
    if event.get("edited") is not None:
        return "an edit of an earlier message"
    user = event.get("user")
    if not (isinstance(user, str) and user):
        return "no author"
    if user == bot_user:
        return "written by propbot itself"
    return None


def installation(context: AsyncBoltContext) -> str:
    """The id of the Slack installation a payload arrived through: the conversation's workspace key.

    propbot runs on one bot token, so this is what `auth.test` said about that token (Bolt's authorization
    keeps it), the same for every payload. The payload's own `team` would not do: in a Slack Connect channel
    it is the other organisation's, and it is null in the clicks of an org-wide Enterprise Grid install."""
    authorized = context.authorize_result
    if authorized is not None and (authorized.team_id or authorized.enterprise_id):
        return str(authorized.team_id or authorized.enterprise_id)
    return str(context.team_id or context.enterprise_id or "")


def user_principal(user: str, user_team: Any, context: AsyncBoltContext) -> str:
    """`slack:<the user's own team>:<user id>`, as written in the permissions file.

    The user's own team (not the installation's) so that a partner organisation's people in a Slack Connect
    channel never match `slack:<your team>:*`. A team that is this installation's own (its workspace or its
    Enterprise Grid org) is written as the installation id, so a person has one principal everywhere."""
    home = installation(context)
    # A payload that names no team for its user gets no team: it matches no `*` entry and no allow-list.
    team = str(user_team) if isinstance(user_team, str) and user_team else "unknown"
    authorized = context.authorize_result
    if authorized is not None and team in (authorized.team_id, authorized.enterprise_id):
        team = home
    return f"slack:{team}:{user}"


def clicker_team(body: dict[str, Any]) -> str | None:
    """The team of whoever clicked a button: `user.team_id`, else the payload's `team` (the clicker's side in a
    Slack Connect channel), never the home workspace by default: a missing field must not lend anyone the host's
    roles."""
    user = body.get("user") or {}
    team = body.get("team")
    found = (user.get("team_id") if isinstance(user, dict) else None) or (
        team.get("id") if isinstance(team, dict) else None
    )
    return found if isinstance(found, str) and found else None


def click_channel(body: dict[str, Any]) -> str:
    """The channel a button was clicked in (a message's `channel`, or the `container` of an ephemeral one)."""
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")


def strip_mention(text: str, bot_user: str | None) -> str:
    """The user's words: our own mention removed, Slack's &amp; &lt; &gt; turned back into characters."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(\|[^>]*)?>", " ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split(" ")).strip()
