"""What `propbot serve` says when it starts: one block naming what listens and what it runs with, no
secrets, no SDK warnings; and a DATABASE_URL that is not a URL stops it with one line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bot.app import describe
from bot.config import Settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.support.harness import TEST_OPENAI_KEY
from tests.support.processes import propbot_env, run_command, start_propbot, stop
from tests.test_slack_processes import read, wait_healthy


def block_after(log: str, headline: str) -> list[str]:
    """The headline's line and the indented lines right after it."""
    lines = log.splitlines()
    [start] = [i for i, line in enumerate(lines) if headline in line]
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


async def test_serve_logs_one_block_naming_what_it_runs_with(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack)
    log = tmp_path / "serve.log"
    process = start_propbot("serve", env, tmp_path, log)
    try:
        await wait_healthy(f"http://127.0.0.1:{env['PORT']}", process, log)
    finally:
        stop(process)
    text = read(log)
    redis_host = redis_url.split("//")[1].split("/")[0]
    model_host = fake_openai.base_url.split("//")[1].split("/")[0]
    block = block_after(text, f"propbot serve listening on http://127.0.0.1:{env['PORT']}")
    aspects = {m.group(1): m.group(2) for m in (re.match(r"  (\w+) +(.*)$", line) for line in block[1:]) if m}
    assert list(aspects) == ["slack", "teams", "store", "database", "model", "permissions", "turns"], block
    assert aspects["slack"] == "HTTP: events and clicks on POST /slack/events"
    assert aspects["teams"] == "off (set MICROSOFT_APP_ID, or TEAMS_LOCAL_MODE=true for a local test client)"
    assert aspects["store"] == f"Redis at {redis_host}"
    assert aspects["database"] == f"sqlite+aiosqlite:///{tmp_path / 'propbot.db'}"
    assert aspects["model"] == f"fake-model at {model_host}"
    assert aspects["permissions"].startswith(f"{tmp_path / 'permissions.yml'}: roles viewer (3 tools), staff (5 tools)")
    assert "manager (all tools, approves all)" in aspects["permissions"]
    # One process per core by default: the turns run in worker processes beside this one (one core: in-process).
    cores = os.cpu_count() or 1
    expected = (
        f"durable queue in Redis; {cores - 1} worker process(es) beside this one (WEB_CONCURRENCY={cores}), "
        "each running up to 500 turns at once"
        if cores > 1
        else "durable queue in Redis; in-process worker on (500 turns at once)"
    )
    assert aspects["turns"] == expected
    # Bolt warned because it also read SLACK_BOT_TOKEN from the environment beside the client it is given.
    assert "will be unused" not in text and "Traceback" not in text
    for secret in (BOT_TOKEN, SIGNING_SECRET, TEST_OPENAI_KEY):
        assert secret not in text


async def test_a_database_url_that_is_not_a_url_stops_serve_with_one_line(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    env = propbot_env(tmp_path, redis_url, fake_openai, fake_slack, DATABASE_URL="notaurl")
    code, out, err = await run_command(["serve"], env, tmp_path)
    assert code == 1, out + err
    assert (out + err).strip().splitlines()[-1] == (
        "propbot: configuration error: DATABASE_URL should be a SQLAlchemy URL for SQLite or PostgreSQL: it cannot "
        "be parsed as a URL (use sqlite:///path.db or postgresql://user:password@host/db)"
    )
    assert "Traceback" not in out + err


def settings(**values: Any) -> Settings:
    return Settings(**{"_env_file": None, **values})


def test_descriptions_name_hosts_and_never_credentials() -> None:
    s = settings(
        redis_url="rediss://:hunter2@cache.example:6380/2",
        openai_base_url="https://user:hunter3@llm.example:8443/v1",
        openai_model="llama3",
    )
    assert describe.store(s) == "Redis (TLS) at cache.example:6380, database 2"
    assert describe.model(s) == "llama3 at llm.example:8443"
    assert describe.store(settings(redis_url="redis+cluster://node1:7000")) == "Redis Cluster at node1:7000"
    assert describe.model(settings()) == "gpt-4o-mini at api.openai.com"
    assert describe.slack(settings(slack_bot_token="xoxb-1", slack_app_token="xapp-1")).startswith("Socket Mode")
    app_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    authenticated = describe.teams(settings(microsoft_app_id=app_id, teams_allowed_tenants="t1,t2"))
    assert authenticated == f"authenticated: POST /api/messages for app {app_id} (MultiTenant); tenants t1, t2"
    assert describe.teams(settings(teams_local_mode=True)).startswith("local mode (TEAMS_LOCAL_MODE)")
    assert describe.turns(settings(), durable=False, worker=True).endswith("(no durable queue: it needs REDIS_URL)")
    off = describe.turns(settings(redis_url="redis://r"), durable=True, worker=False)
    assert off.endswith("in-process worker off (IN_PROCESS_WORKER=false): run `propbot worker`")
    dedicated = describe.turns(settings(redis_url="redis://r"), durable=True, worker=True, dedicated=True)
    assert dedicated == "durable queue in Redis; this worker runs up to 500 turns at once"
