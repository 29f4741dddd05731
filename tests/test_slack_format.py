"""Markdown -> mrkdwn, escaping that makes pings impossible, splitting and Block Kit within limits."""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import EVENTS_PATH
from adapters.slack import blocks as slack_blocks
from adapters.slack import format as slack_format
from bot.types import Approval, Conversation, Detail, Presentation, PresentationItem, TextReply
from tests.support.block_kit import check_message

# What Slack turns into a ping or a special link: only ever from a literal "<".
CONTROL = re.compile(r"<(!|@|#)")


def test_markdown_becomes_mrkdwn() -> None:
    source = "# Results\n**Bold** and *it* and ~~gone~~, see [the list](https://example.com/a?b=1&c=2)\n- one\n* two"
    out = slack_format.to_mrkdwn(source)
    assert out.splitlines() == [
        "*Results*",
        "*Bold* and _it_ and ~gone~, see <https://example.com/a?b=1&amp;c=2|the list>",
        "• one",
        "• two",
    ]


def test_code_is_kept_verbatim_but_escaped() -> None:
    out = slack_format.to_mrkdwn("Run `a **b** <c>`\n```python\nx = 1 < 2 and **y**\n```")
    assert out.splitlines() == ["Run `a **b** &lt;c&gt;`", "```", "x = 1 &lt; 2 and **y**", "```"]


def test_model_text_cannot_ping() -> None:
    nasty = "<!channel> <!here|here> <!everyone> <@U123> <!subteam^S1|team> @channel @Here @everyone"
    out = slack_format.to_mrkdwn(nasty)
    assert not CONTROL.search(out)
    assert "@channel" not in out and "@Here" not in out and "@everyone" not in out
    assert f"@{slack_format.ZWSP}channel" in out


@given(st.text())
def test_no_input_produces_a_control_sequence(text: str) -> None:
    out = slack_format.to_mrkdwn(text)
    # Links we build ourselves start with <http or <mailto; nothing else may open with "<".
    assert not CONTROL.search(out)
    assert not re.search(r"(?<!\u200b)@(channel|here|everyone)\b", out, re.IGNORECASE)


@given(st.text(alphabet=st.sampled_from(list("ab &<>\n`*#-")), max_size=9000), st.integers(50, 3000))
def test_split_respects_the_limit(text: str, limit: int) -> None:
    pieces = slack_format.split(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert "".join(pieces).replace("```", "").split() == text.replace("```", "").split() or "```" in text


def test_split_keeps_code_blocks_balanced() -> None:
    text = "intro\n```\n" + "\n".join(f"line {i}" for i in range(400)) + "\n```\nafter"
    pieces = slack_format.split(text, 1000)
    assert len(pieces) > 3
    assert all(p.count("```") % 2 == 0 for p in pieces)


def test_a_long_answer_with_many_results_fits_slack_limits() -> None:
    items = [
        PresentationItem(title=f"{i} Main St <@U1>", fields=[Detail(label="Rent", value=f"${i}")]) for i in range(300)
    ]
    reply = TextReply(text="word " * 20_000, presentations=[Presentation(title="300 properties", items=items)])
    messages = [m.payload() for m in slack_blocks.reply_messages(reply)]
    assert len(messages) >= 2
    for payload in messages:
        assert check_message({"channel": "C1", **payload}) == []
        assert not CONTROL.search(payload["text"])
    rendered = "".join(b.get("text", {}).get("text", "") for m in messages for b in m["blocks"])
    assert "299 Main St" in rendered and rendered.count("word") == 20_000


def _approval(**overrides: object) -> Approval:
    values: dict[str, object] = {
        "id": "ap-1",
        "conversation": Conversation(platform="slack", workspace="T1", channel="C1", thread="1.1"),
        "requested_by": "slack:T1:USTAFF",
        "tool": "schedule_maintenance",
        "tool_call_id": "call_1",
        "arguments": {},
        "summary": [Detail(label="Property", value="1 Main St"), Detail(label="Description", value="<!channel> x")],
        "title": "Schedule maintenance",
        "created_at": time.time(),
        "expires_at": time.time() + 3600,
    }
    values.update(overrides)
    return Approval.model_validate(values)


def test_card_escapes_stored_details_and_mentions_only_the_requester() -> None:
    card = slack_blocks.approval_card(_approval())
    assert check_message({"channel": "C1", **card}) == []
    text = str(card)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "<@USTAFF>" in text
    actions = next(b for b in card["blocks"] if b["type"] == "actions")["elements"]
    assert [(a["action_id"], a["value"], a.get("style")) for a in actions] == [
        ("propbot_approve", "ap-1", "primary"),
        ("propbot_cancel", "ap-1", "danger"),
    ]


def test_closed_card_has_no_buttons_and_names_the_decider() -> None:
    approval = _approval(
        decided_by="slack:T1:UMANAGER", decided_at=time.time(), status="failed", result={"ok": False, "error": "<b>"}
    )
    card = slack_blocks.closed_card(approval)
    assert all(b["type"] != "actions" for b in card["blocks"])
    assert "<@UMANAGER>" in str(card) and "&lt;b&gt;" in str(card)
    forged = slack_blocks.closed_card(_approval(decided_by="slack:T1:U1> <!here", status="cancelled"))
    assert "<!here" not in str(forged) and "Cancelled: nothing was done." in str(forged)


def test_closed_card_says_what_the_tool_did_in_its_own_words() -> None:
    summary = "Request MR-5002 cancelled."
    cancelled = _approval(status="done", decided_by="slack:T1:UMANAGER", result={"ok": True, "summary": summary})
    card = str(slack_blocks.closed_card(cancelled))
    assert "Done: Request MR-5002 cancelled." in card and "created" not in card
    running = str(slack_blocks.closed_card(_approval(status="approved", decided_by="slack:T1:UMANAGER")))
    assert "finishing it" in running


def test_manifest_and_procfile_match_the_adapter() -> None:
    root = Path(__file__).resolve().parent.parent
    manifest = yaml.safe_load((root / "manifest.yml").read_text())
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == [
        "app_mention",
        "message.im",
        "assistant_thread_started",
        "assistant_thread_context_changed",
        "app_home_opened",
        "subteam_members_changed",
        "subteam_updated",
    ]
    assert settings["event_subscriptions"]["request_url"].endswith(EVENTS_PATH)
    assert settings["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://YOUR-HOST" + EVENTS_PATH,
        "message_menu_options_url": "https://YOUR-HOST" + EVENTS_PATH,
    }
    assert settings["socket_mode_enabled"] is False
    needed = {"app_mentions:read", "chat:write", "im:history", "im:read", "im:write", "users:read", "reactions:write"}
    exactly_once = {"channels:history", "groups:history"}  # a retry looks for what an earlier attempt posted
    directory = {"usergroups:read", "users:read.email"}  # roles from user groups and e-mail addresses
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == (
        needed | {"assistant:write", "files:write"} | exactly_once | directory
    )
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["assistant_view"]["assistant_description"]
    assert manifest["features"]["bot_user"]["display_name"]
    assert "web: propbot serve" in (root / "Procfile").read_text().splitlines()
