"""`propbot check`: what a configuration will run with, and a non-zero exit when something is wrong."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.harness import PERMISSIONS_YAML
from tests.support.processes import run_command


async def check(tmp_path: Path, **env: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "REDIS", "MICROSOFT_"))}
    code, out, err = await run_command(["check"], {**base, **env}, tmp_path)
    return code, out + err


async def test_a_good_configuration_passes(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "permissions.yml").write_text(PERMISSIONS_YAML)
    code, out = await check(
        tmp_path,
        OPENAI_API_KEY="sk-check-test-key-0000000000",
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    assert code == 0, out
    assert "ok   redis        reachable" in out
    assert "ok   permissions" in out and "manager" in out
    assert "schedule_maintenance" in out and "all good" in out
    assert "sk-check-test-key" not in out


async def test_problems_are_listed_and_exit_non_zero(tmp_path: Path) -> None:
    (tmp_path / "permissions.yml").write_text("roles:\n  viewer: {tools: [a]}\nusers:\n  u1: boss\n")
    code, out = await check(tmp_path, REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="mysql://nope/db")
    assert code == 1
    assert "FAIL model" in out and "OPENAI_API_KEY is not set" in out
    assert "FAIL redis        cannot be reached" in out
    assert "FAIL permissions  permissions.yml: line 4" in out
    assert "FAIL database     DATABASE_URL should be a SQLAlchemy URL" in out
    assert "4 problem(s)" in out


async def test_extra_tool_modules_from_config_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "acme_tools.py").write_text(
        "from pydantic import BaseModel\n"
        "from tools.registry import ToolContext, tool\n\n"
        "class Args(BaseModel):\n    city: str\n\n"
        "@tool()\n"
        "async def rent_roll(args: Args, ctx: ToolContext) -> dict[str, str]:\n"
        '    """Total rent due in a city."""\n'
        '    return {"city": args.city}\n'
    )
    code, out = await check(
        tmp_path,
        OPENAI_API_KEY="sk-check-test-key-0000000000",
        TOOL_MODULES="acme_tools",
        PYTHONPATH=str(tmp_path),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )
    assert code == 0, out
    tools_line = next(line for line in out.splitlines() if " tools " in f" {line} ")
    assert "rent_roll" in tools_line and "search_properties" in tools_line, out
