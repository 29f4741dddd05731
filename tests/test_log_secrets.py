"""Tokens and secrets never reach the logs: representative flows with every log record captured at
DEBUG, the SecretFilter itself, and the suite-wide guard (tests/support/log_guard.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from bot.observability.logs import REDACTED, JsonFormatter, SecretFilter
from bot.types import ApprovalRequest, DecisionOutcome
from tests.support import log_guard
from tests.support.fake_openai import Fault, call, calls, last_message, text, tool_results
from tests.support.harness import MANAGER, STAFF, TEST_OPENAI_KEY, Harness
from tests.support.scripts import SCHEDULE

SLACK_TOKEN = log_guard.register_secret("xoxb-test-1111-2222-secret-token-do-not-log")
SIGNING_SECRET = log_guard.register_secret("test-signing-secret-never-log-8c1f2e")
SECRETS = (TEST_OPENAI_KEY, SLACK_TOKEN, SIGNING_SECRET)


def model(request: dict[str, Any]) -> dict[str, Any]:
    if last_message(request)["role"] == "user":
        return calls(call("search_properties", {"location": "Austin"}), call("schedule_maintenance", SCHEDULE))
    return text("done: " + json.dumps(tool_results(request))[:200])


def everything(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a handler would write it: message, arguments and traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_turn_approval_and_model_failure_log_no_secret(
    make_harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: third-party libraries included
    h: Harness = await make_harness(slack_bot_token=SLACK_TOKEN, slack_signing_secret=SIGNING_SECRET)
    h.fake.default = model
    replies = await h.say(STAFF, f"schedule it, and by the way my token is {SLACK_TOKEN}")
    [approval] = [r.approval for r in replies if isinstance(r, ApprovalRequest)]
    assert (await h.decide(approval.id, MANAGER)).outcome is DecisionOutcome.DONE
    h.fake.default = lambda request: Fault(401, body={"error": {"message": f"bad key {TEST_OPENAI_KEY}"}})
    failed = await h.say(STAFF, "hello?")
    assert failed and failed[0].is_error  # type: ignore[union-attr]
    h.fake.default = lambda request: Fault(500)
    await h.say(STAFF, "and now?")

    logged = everything(caplog)
    assert len(caplog.records) > 20, "the flows should have logged something at DEBUG"
    assert "model call failed" in logged  # the failures were logged, just without the key
    for secret in SECRETS:
        assert secret not in logged


async def test_config_errors_name_the_variable_never_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, openai_api_key=TEST_OPENAI_KEY, redis_url=f"http://:{SIGNING_SECRET}@host")
    assert "REDIS_URL" in str(caught.value) and SIGNING_SECRET not in str(caught.value)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OPENAI_", "SLACK_"))}
    env.update(
        OPENAI_API_KEY=TEST_OPENAI_KEY,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        PORT="not-a-port",
        LOG_LEVEL="DEBUG",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1 and "PORT" in err.decode()
    for secret in SECRETS:
        assert secret not in out.decode() + err.decode()


def record(message: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("t", logging.ERROR, __file__, 1, message, args, info)


def test_secret_filter_replaces_registered_secrets_and_token_shapes() -> None:
    scrub = SecretFilter([SIGNING_SECRET, "short"])
    rec = record(
        "secret=%s bot=%s app=%s key=%s auth=%s",
        SIGNING_SECRET,
        SLACK_TOKEN,
        "xapp-1-A0-123456",
        TEST_OPENAI_KEY,
        "Bearer abcdefghijklmnop.qrs",
    )
    assert scrub.filter(rec)
    message = rec.getMessage()
    for leaked in (SIGNING_SECRET, SLACK_TOKEN, "xapp-1-A0-123456", TEST_OPENAI_KEY, "abcdefghijklmnop"):
        assert leaked not in message
    assert message.count(REDACTED) == 5
    assert "short" in scrub.scrub("short")  # too short to register: it would mangle ordinary words


def test_secret_filter_scrubs_exception_text_and_json_output() -> None:
    try:
        raise RuntimeError(f"connect failed with {SIGNING_SECRET} and {SLACK_TOKEN}")
    except RuntimeError as exc:
        rec = record("failed", exc=exc)
    SecretFilter([SIGNING_SECRET]).filter(rec)
    assert rec.exc_info is None and rec.exc_text is not None
    assert "RuntimeError" in rec.exc_text and SIGNING_SECRET not in rec.exc_text and SLACK_TOKEN not in rec.exc_text
    line = JsonFormatter().format(rec)
    assert SIGNING_SECRET not in line and SLACK_TOKEN not in line and json.loads(line)["exc"]


def test_the_suite_guard_catches_a_leak() -> None:
    before = len(log_guard.leaks())
    logging.getLogger("bot.leaky").error("oops %s", SIGNING_SECRET)
    caught = log_guard.leaks()[before:]
    log_guard.forget(before)  # this leak was on purpose: don't fail the session for it
    assert len(caught) == 1 and "test_the_suite_guard_catches_a_leak" in caught[0] and SIGNING_SECRET not in caught[0]
