"""Logging: text or JSON lines, a request/conversation context, and secrets scrubbed from every record."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

conversation_var: contextvars.ContextVar[str] = contextvars.ContextVar("conversation", default="-")
request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@contextlib.contextmanager
def log_context(conversation: str, request_id: str) -> Iterator[None]:
    """Tag every record written inside the block; reset afterwards, so a caller that runs several turns in
    one task (the terminal chat, tests) does not carry one turn's tags into the next line it writes."""
    tokens = conversation_var.set(conversation), request_var.set(request_id)
    try:
        yield
    finally:
        conversation_var.reset(tokens[0])
        request_var.reset(tokens[1])


# Token shapes worth catching even when nobody registered the value (a token pasted into a message).
_TOKEN_PATTERNS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|sk-[A-Za-z0-9_-]{12,}|Bearer\s+[A-Za-z0-9._~+/=-]{12,})"
)
REDACTED = "[redacted]"


class SecretFilter(logging.Filter):
    """Rewrites each record's final message with every known secret and token shape replaced."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN_PATTERNS.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = self.scrub(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.conversation = conversation_var.get()
        record.request_id = request_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "conversation": getattr(record, "conversation", "-"),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(conversation)s %(request_id)s] %(message)s"


def setup_logging(
    level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> SecretFilter:
    handler = logging.StreamHandler(stream or sys.stderr)
    secret_filter = SecretFilter(secrets)
    handler.addFilter(secret_filter)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party loggers echo request bodies and headers at DEBUG; keep them at WARNING.
    # aiosqlite logs every call from its worker thread, where no turn's context exists.
    # openai 3.x sends through httpx2/httpcore2, which log every request at INFO.
    noisy_loggers = (
        *("httpx", "httpcore", "httpx2", "httpcore2", "openai"),
        *("slack_bolt", "slack_sdk", "botbuilder", "msrest", "urllib3"),
    )
    for noisy in (*noisy_loggers, "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return secret_filter
