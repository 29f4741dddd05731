"""The payload corpus (tests/payloads): what each file must lead to, and the fields it may not lose.

Every file has an `Expect`: its verdict, the words that show why (a log line for what propbot ignores, the
answer's body for what it rejects, the note the clicker gets for a refused click), and `needs`: the fields
whose loss may rightly change the verdict. The fuzz tests null or remove any other field, at any depth,
and require the very same verdict: a field Slack or Microsoft documents as optional must never decide
whether propbot answers. `needs` entries are dotted paths (`*` matches any one key or index); `a|b` means
"a or b is enough", so the need is only lost when both are.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from tests.support.fake_openai import Request, last_message, text
from tests.support.scripts import schedule_then_report

PAYLOADS = Path(__file__).parent.parent / "payloads"


class Verdict(Enum):
    ANSWERED = "answered"  # a turn ran and its reply was posted where the message came from
    APPROVED = "approved"  # the click decided the pending approval: tool ran once, card replaced
    CANCELLED = "cancelled"  # the click cancelled the pending approval: nothing ran, card replaced
    IGNORED = "ignored"  # 200, nothing stored, nothing posted, and a log line says why
    REFUSED = "refused"  # a click that changed nothing: only the clicker is told why
    REJECTED = "rejected"  # a 4xx whose body names the reason, nothing stored or posted


@dataclass(frozen=True)
class Expect:
    verdict: Verdict
    why: str = ""  # IGNORED: in the log line; REFUSED: in the clicker's note; REJECTED: in the answer's body
    needs: tuple[str, ...] = ()


# What propbot reads to tell a person's new question from everything else in an event_callback envelope.
_MENTION = (
    "type",
    "event.type",
    "event.user",
    "event.text",
    "event.ts",
    "event.channel",
    "event.subtype",
    "event.bot_id",
    "event.edited",
)
# A DM is told from other message events by its channel type.
_EVENT = (*_MENTION, "event.channel_type")
# A click: which button, on which approval, by whom (a person and their team: a click naming no team gets no
# role). Everything else (channel, container, message, enterprise) only says where the card is, which
# propbot stored when it posted the card.
_CLICK = ("type", "actions.0.action_id", "actions.0.value", "user.id", "user.team_id|team.id")
# An org-wide install's click has `team` null: the clicker's team is `user.team_id` alone.
_ORG_CLICK = (*_CLICK[:-1], "user.team_id")
# A partner's click is refused because of the clicker's own team, and the refusal goes to the channel.
_PARTNER_CLICK = (*_CLICK, "user.team_id", "channel.id|container.channel_id")

SLACK: dict[str, Expect] = {
    "block_actions_workspace.json": Expect(Verdict.APPROVED, needs=_CLICK),
    "block_actions_grid_org_install.json": Expect(Verdict.APPROVED, needs=_ORG_CLICK),
    "block_actions_slack_connect.json": Expect(Verdict.REFUSED, "not allowed to use propbot", _PARTNER_CLICK),
    "block_actions_in_thread.json": Expect(Verdict.APPROVED, needs=_CLICK),
    "block_actions_ephemeral.json": Expect(Verdict.APPROVED, needs=_CLICK),
    "block_actions_requester_cancels.json": Expect(Verdict.CANCELLED, needs=_CLICK),
    "event_app_mention.json": Expect(Verdict.ANSWERED, needs=_MENTION),
    "event_app_mention_in_thread.json": Expect(Verdict.ANSWERED, needs=_MENTION),
    "event_app_mention_slack_connect.json": Expect(
        Verdict.IGNORED, "not in SLACK_ALLOWED_TEAMS", (*_MENTION, "event.user_team|event.team")
    ),
    "event_app_mention_grid.json": Expect(Verdict.ANSWERED, needs=_MENTION),
    "event_message_im.json": Expect(Verdict.ANSWERED, needs=_EVENT),
    "event_message_im_file_share.json": Expect(Verdict.ANSWERED, needs=_EVENT),
    "event_message_im_edited.json": Expect(Verdict.IGNORED, "an edit of an earlier message", _EVENT),
    "event_message_im_bot_message.json": Expect(Verdict.IGNORED, "subtype 'bot_message'", _EVENT),
    "event_message_im_changed.json": Expect(Verdict.IGNORED, "subtype 'message_changed'", _EVENT),
    "event_message_im_deleted.json": Expect(Verdict.IGNORED, "subtype 'message_deleted'", _EVENT),
    "app_rate_limited.json": Expect(Verdict.IGNORED, "Slack is dropping events for propbot", ("type",)),
    "shortcut_global.json": Expect(Verdict.REJECTED, "propbot does not handle 'shortcut' payloads", ("type",)),
}
# Sent over Socket Mode by tests/test_payload_corpus.py; over HTTP (their payloads) by the fuzz tests.
SOCKET = {
    "socket_events_api_app_mention.json": SLACK["event_app_mention.json"],
    "socket_interactive_block_actions.json": SLACK["block_actions_workspace.json"],
}

# The route's own requirements of any activity, and the tenant it is checked against.
_ACTIVITY = ("type", "serviceUrl", "conversation.id", "from.id", "channelData.tenant.id|conversation.tenantId")
# The words of a message, with propbot's own mention cut out of them.
_WORDS = (*_ACTIVITY, "text", "recipient.id", "entities.*.type", "entities.*.text", "entities.*.mentioned.id")
# Who clicked (roles are given per AAD object id), on which approval, with which verb.
_BY = ("from.aadObjectId",)

TEAMS: dict[str, Expect] = {
    "message_personal.json": Expect(Verdict.ANSWERED, needs=_WORDS),
    "message_group_chat_mention.json": Expect(Verdict.ANSWERED, needs=_WORDS),
    "message_channel_mention.json": Expect(Verdict.ANSWERED, needs=_WORDS),
    "message_channel_thread_reply.json": Expect(Verdict.ANSWERED, needs=_WORDS),
    "message_group_chat_no_text_for_us.json": Expect(Verdict.IGNORED, "no words for propbot", (*_WORDS, "value")),
    "conversation_update_bot_added.json": Expect(Verdict.IGNORED, "only messages and card actions", _ACTIVITY),
    "installation_update_add.json": Expect(Verdict.IGNORED, "only messages and card actions", _ACTIVITY),
    "invoke_adaptive_card_action.json": Expect(
        Verdict.APPROVED, needs=(*_ACTIVITY, *_BY, "name", "value.action.verb", "value.action.data.approval_id")
    ),
    "invoke_task_fetch.json": Expect(
        Verdict.REJECTED, "propbot does not handle the invoke 'task/fetch'", (*_ACTIVITY, "name")
    ),
    "message_action_submit.json": Expect(
        Verdict.APPROVED, needs=(*_ACTIVITY, *_BY, "value.approval_id", "value.action")
    ),
}

_unique = itertools.count(1)


def unique() -> int:
    return next(_unique)


def load(platform: str, name: str, **values: str) -> dict[str, Any]:
    """A corpus file with its `{{PLACEHOLDERS}}` filled in."""
    raw = (PAYLOADS / platform / name).read_text()
    for key, value in values.items():
        raw = raw.replace("{{" + key + "}}", value)
    assert "{{" not in raw, f"{platform}/{name}: a placeholder was left unfilled"
    payload: dict[str, Any] = json.loads(raw)
    return payload


def corpus_model(request: Request) -> dict[str, Any]:
    """The model behind every corpus test: a plumber request becomes a pending approval (the card the click
    files decide), after a tool it reports the outcome, and any other question gets "corpus answer"."""
    last = last_message(request)
    if last["role"] == "user" and "plumber" not in str(last.get("content")):
        return text("corpus answer")
    return schedule_then_report(request)


# -- nulling and removing fields ------------------------------------------------------------------------

FieldPath = tuple[str | int, ...]


def paths(node: Any, prefix: FieldPath = ()) -> list[FieldPath]:
    """Every field and list item under `node`, parents before children."""
    found: list[FieldPath] = []
    items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths(value, (*prefix, key)))
    return found


def mutate(payload: dict[str, Any], picks: list[tuple[int, bool]]) -> tuple[dict[str, Any], list[FieldPath]]:
    """A copy with some fields (any depth) set to null or removed, and the paths of what was changed;
    `picks` are (index into the paths still there, remove?). A list item is always removed, never nulled:
    a documented list can be shorter, but its items are objects, not nulls. Each path is the one the field
    had when it was changed."""
    out = copy.deepcopy(payload)
    changed: list[FieldPath] = []
    for index, remove in picks:
        every = paths(out)
        if not every:
            break
        path = every[index % len(every)]
        *parents, last = path
        node: Any = out
        for part in parents:
            node = node[part]
        if remove or isinstance(node, list):
            del node[last]
        else:
            node[last] = None
        changed.append(path)
    return out, changed


def without(payload: dict[str, Any], *removed: FieldPath) -> dict[str, Any]:
    """A copy with the fields at `removed` taken out."""
    out = copy.deepcopy(payload)
    for path in removed:
        *parents, last = path
        node: Any = out
        for part in parents:
            node = node[part]
        del node[last]
    return out


def _hits(changed: FieldPath, need: str) -> bool:
    """Whether changing `changed` (nulling or removing it) loses the field `need` names."""
    wanted = need.split(".")
    if len(changed) > len(wanted):
        return False
    return all(part == "*" or part == str(key) for key, part in zip(changed, wanted, strict=False))


def loses_a_need(changed: list[FieldPath], needs: tuple[str, ...]) -> bool:
    return any(
        all(any(_hits(path, alternative) for path in changed) for alternative in need.split("|")) for need in needs
    )
