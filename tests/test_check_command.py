"""`propbot check`: what a configuration will run with, and a non-zero exit when something is wrong.

Every test runs the real command in a subprocess against the suite's Redis and the fake model and Slack
servers, the way an operator runs it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.support.harness import PERMISSIONS_YAML, TEST_OPENAI_KEY
from tests.support.processes import free_port, run_command
from tools.db import Database

# One finding a line: status, what, detail; then the verdict. Anything else would be a stray log line.
FINDING = re.compile(r"^(ok  |warn|FAIL) [a-z]+ +\S.*$|^all good$|^\d+ problem\(s\)$")


async def check(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "OPENAI_", "REDIS", "MICROSOFT_", "LOG_", "DATABASE_URL"))
    }
    return await run_command(["check"], {"NO_PROXY": "127.0.0.1,localhost", **base, **env}, tmp_path)


def finding(out: str, what: str) -> str:
    [line] = [line for line in out.splitlines() if line[5:].startswith(f"{what} ")]
    return line


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def model_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": TEST_OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url, "OPENAI_MODEL": "fake-model"}


def slack_env(fake: FakeSlack, token: str = BOT_TOKEN) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.base_url}


async def test_a_good_configuration_passes_and_changes_nothing(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    (tmp_path / "permissions.yml").write_text(PERMISSIONS_YAML)
    fake_openai.api_key = TEST_OPENAI_KEY
    db_file = tmp_path / "db.sqlite"
    code, out, err = await check(
        tmp_path,
        **model_env(fake_openai),
        **slack_env(fake_slack),
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{db_file}",
    )
    assert code == 0, out + err
    assert err == ""  # no log lines beside the findings
    assert all(FINDING.match(line) for line in out.splitlines()), out
    port = fake_openai.base_url.split(":")[2].split("/")[0]
    assert finding(out, "model") == f"ok   model        fake-model at 127.0.0.1:{port}: answers"
    assert finding(out, "slack").startswith("ok   slack        HTTP: events and clicks on POST /slack/events;")
    assert "auth.test: @propbot in Test (T1)" in finding(out, "slack")
    assert finding(out, "redis").startswith("ok   redis        Redis at 127.0.0.1:") and "reachable" in out
    assert "manager (all tools, approves all)" in finding(out, "permissions")
    assert "schedule_maintenance v1" in finding(out, "tools") and out.endswith("all good\n")
    assert "no file yet" in finding(out, "database")
    assert not db_file.exists() and not [name for name in files_in(tmp_path) if ".db" in name]  # serve creates
    assert fake_slack.calls_to("auth.test") and fake_slack.calls_to("auth.test")[0].authorized
    assert TEST_OPENAI_KEY not in out and BOT_TOKEN not in out and SIGNING_SECRET not in out


async def test_an_existing_sqlite_database_is_read_not_written(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    db_file = tmp_path / "propbot.db"
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    await db.start()
    await db.close()
    before, files = db_file.read_bytes(), files_in(tmp_path)
    code, out, err = await check(tmp_path, **model_env(fake_openai), DATABASE_URL=f"sqlite:///{db_file}")
    assert code == 0, out + err
    assert re.search(r"ok   database     sqlite\+aiosqlite:///\S+: answers: \d+ properties, \d+ maintenance", out)
    assert db_file.read_bytes() == before and files_in(tmp_path) == files  # not even -wal/-shm files


async def test_unreachable_model_server_and_revoked_slack_token_fail_one_line_each(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    code, out, err = await check(
        tmp_path,
        OPENAI_API_KEY=TEST_OPENAI_KEY,
        OPENAI_BASE_URL=nowhere,
        **slack_env(fake_slack, token="xoxb-revoked-0000-token"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'propbot.db'}",
    )
    assert code == 1, out + err
    assert err == "" and "Traceback" not in out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    port = nowhere.split(":")[2].split("/")[0]
    assert fails == [
        f"FAIL model        gpt-4o-mini at 127.0.0.1:{port}: cannot connect – check OPENAI_BASE_URL and that the "
        "server runs",
        "FAIL slack        auth.test: invalid_auth – the SLACK_BOT_TOKEN was revoked or is wrong; reinstall the app "
        "and copy the Bot User OAuth Token",
    ]
    assert out.endswith("2 problem(s)\n")


async def test_a_refused_key_fails_and_an_unlisted_model_warns(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.api_key = "sk-the-right-key-000000000000"
    code, out, _ = await check(tmp_path, **model_env(fake_openai), DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}")
    assert code == 1
    assert finding(out, "model").endswith("the key was refused (401) – check OPENAI_API_KEY")

    fake_openai.api_key = None
    fake_openai.models = ["llama3.1:8b", "qwen2.5:7b"]
    code, out, _ = await check(tmp_path, **model_env(fake_openai), DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}")
    assert code == 0, out
    assert finding(out, "model").startswith("warn model        fake-model at 127.0.0.1:")
    assert "does not list it (it lists llama3.1:8b, qwen2.5:7b) – check OPENAI_MODEL" in out


async def test_problems_are_listed_and_exit_non_zero(tmp_path: Path) -> None:
    (tmp_path / "permissions.yml").write_text("roles:\n  viewer: {tools: [a]}\nusers:\n  u1: boss\n")
    app_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    code, out, err = await check(
        tmp_path, REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="mysql://nope/db", MICROSOFT_APP_ID=app_id
    )
    assert code == 1
    assert "FAIL model" in out and "OPENAI_API_KEY is not set" in out
    assert "FAIL teams        MICROSOFT_APP_ID is set but TEAMS_ALLOWED_TENANTS is not" in out
    assert "FAIL redis        cannot be reached" in out
    assert "FAIL permissions  permissions.yml: line 4" in out
    assert "FAIL database     DATABASE_URL should be a SQLAlchemy URL" in out
    assert "5 problem(s)" in out and err == ""


@pytest.mark.parametrize("url", ["notaurl", "postgresql://u:hunter2@db.example:notaport/db"])
async def test_a_database_url_that_is_not_a_url_is_one_line(tmp_path: Path, fake_openai: FakeOpenAI, url: str) -> None:
    code, out, err = await check(tmp_path, **model_env(fake_openai), DATABASE_URL=url)
    assert code == 1
    assert finding(out, "database") == (
        "FAIL database     DATABASE_URL should be a SQLAlchemy URL for SQLite or PostgreSQL: it cannot be parsed as "
        "a URL (use sqlite:///path.db or postgresql://user:password@host/db)"
    )
    assert "Traceback" not in out + err and "hunter2" not in out + err


async def test_extra_tool_modules_from_config_are_loaded(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    (tmp_path / "acme_tools.py").write_text(
        "from pydantic import BaseModel\n"
        "from tools import Registry, ToolContext\n\n"
        "tools = Registry()\n\n"
        "class Args(BaseModel):\n    city: str\n\n"
        "@tools.tool()\n"
        "async def rent_roll(args: Args, ctx: ToolContext) -> dict[str, str]:\n"
        '    """Total rent due in a city."""\n'
        '    return {"city": args.city}\n'
    )
    code, out, err = await check(
        tmp_path,
        **model_env(fake_openai),
        TOOL_MODULES="acme_tools:tools",
        PYTHONPATH=str(tmp_path),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    assert code == 0, out
    assert "rent_roll" in finding(out, "tools") and "search_properties" in finding(out, "tools")
    # Without a permissions file the check announces trial mode in its own line; the warning is not logged too.
    assert "TRIAL MODE: no permissions file" in finding(out, "permissions")
    assert err == ""
