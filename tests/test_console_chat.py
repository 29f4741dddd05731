"""`propbot chat` as a user runs it: a real subprocess, scripted through standard input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.support.fake_openai import FakeOpenAI, call, calls, last_message, text, tool_results, unstamped
from tests.support.harness import PERMISSIONS_YAML, TEST_OPENAI_KEY
from tests.support.processes import run_command

SCHEDULE = {
    "property_id": "P-1001",
    "issue_type": "hvac",
    "priority": "medium",
    "description": "AC blows warm air",
    "preferred_date": None,
}


def model(request: dict[str, Any]) -> dict[str, Any]:
    last = last_message(request)
    if last["role"] == "user":
        return calls(call("schedule_maintenance", SCHEDULE))
    result = tool_results(request)[-1]
    return text(f"final: ok={result['ok']} request={result.get('data', {}).get('request_id')}")


async def run_chat(tmp_path: Path, fake: FakeOpenAI, stdin: str, *args: str, **extra_env: str) -> tuple[int, str, str]:
    perms = tmp_path / "permissions.yml"
    perms.write_text(PERMISSIONS_YAML)
    env = {
        **{k: v for k, v in os.environ.items() if k != "LOG_LEVEL"},
        **extra_env,
        "OPENAI_API_KEY": TEST_OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}",
        "PERMISSIONS_FILE": str(perms),
        "REDIS_URL": "",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return await run_command(["chat", *args], env, tmp_path, stdin)


async def test_chat_asks_for_approval_and_the_approver_decides(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = model
    code, out, err = await run_chat(
        tmp_path,
        fake_openai,
        "schedule AC repair at P-1001\na\n\n",
        "--user",
        "slack:T1:USTAFF",
        "--approver",
        "slack:T1:UMANAGER",
    )
    assert code == 0, err
    assert "Approval needed" in out and "hvac" in out.lower()
    assert "approval_requested schedule_maintenance" in out  # tool activity is shown
    assert "[done]" in out
    assert "final: ok=True request=MR-" in out
    assert "Traceback" not in out + err


async def test_an_empty_line_does_not_quit_and_ctrl_d_ends_the_line(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = lambda request: text(f"echo: {unstamped(last_message(request)['content'])}")
    code, out, err = await run_chat(tmp_path, fake_openai, "\n   \nhello\n", "--user", "slack:T1:USTAFF")
    assert code == 0, err
    assert "bot> echo: hello" in out and len(fake_openai.requests) == 1
    # Input ended (Ctrl-D) at the prompt: the chat ends that line so the shell's prompt starts on its own.
    assert out.endswith("you> \n")


async def test_slash_quit_leaves(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = lambda request: text("ok")
    code, out, err = await run_chat(tmp_path, fake_openai, "hello\n/quit\nnever sent\n", "--user", "slack:T1:USTAFF")
    assert code == 0, err
    assert "bot> ok" in out
    assert len(fake_openai.requests) == 1 and "never sent" not in json.dumps(fake_openai.requests)


async def test_the_chat_shows_the_conversation_and_each_event_once(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = model
    script = "schedule AC repair at P-1001\na\n"
    approver = ("--user", "slack:T1:USTAFF", "--approver", "slack:T1:UMANAGER")
    code, out, err = await run_chat(tmp_path, fake_openai, script, *approver)
    assert code == 0 and err == "", err  # without LOG_LEVEL: no log lines at all
    for kind in ("approval_requested", "approved", "tool_call"):
        assert out.count(f"· {kind} schedule_maintenance") == 1, out
    assert re.search(r"· tool_call schedule_maintenance\(.*\) -> ok request_id=MR-\w+ status=scheduled", out)

    code, out, err = await run_chat(tmp_path, fake_openai, script, *approver, LOG_LEVEL="INFO")
    assert code == 0, err
    assert "INFO bot.core.agent" in err and "turn finished" in err  # LOG_LEVEL set: the log is back
    assert "audit " not in err and "HTTP Request" not in err  # events are shown once, on the chat's side
    assert out.count("· approval_requested schedule_maintenance") == 1


async def test_self_approval_is_refused_with_the_reason(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = model
    code, out, err = await run_chat(
        tmp_path, fake_openai, "schedule AC repair at P-1001\na\n\n", "--user", "slack:T1:UMANAGER"
    )
    assert code == 0, err
    assert "[refused] You cannot approve your own request" in out
    assert "final:" not in out


async def test_missing_api_key_stops_start_up_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    code, _, err = await run_command(["chat", "--user", "slack:T1:U1"], env, tmp_path)
    assert code == 1
    assert err.strip().splitlines() == [
        "propbot: configuration error: OPENAI_API_KEY should be set: the API key for your OpenAI-compatible server"
    ]


async def test_bad_or_unreachable_database_stops_start_up_with_one_line(tmp_path: Path) -> None:
    for url, words in [
        ("mysql://x/y", "DATABASE_URL should be a SQLAlchemy URL for SQLite or PostgreSQL: unsupported"),
        ("postgresql://u@127.0.0.1:1/db", "DATABASE_URL: cannot open the database (ConnectionRefusedError)"),
    ]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "REDIS"))},
            "OPENAI_API_KEY": TEST_OPENAI_KEY,
            "DATABASE_URL": url,
        }
        code, _, text = await run_command(["chat", "--user", "slack:T1:U1"], env, tmp_path)
        assert code == 1, text
        assert f"propbot: configuration error: {words}" in text and "Traceback" not in text
