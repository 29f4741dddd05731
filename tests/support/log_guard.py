"""A pytest plugin that watches every log record of the whole suite for the test secrets.

A handler on the root logger checks each record as it is emitted (message, arguments merged, and
exception text) against the known test secrets; at the end of the session any hit fails the run,
naming the test and logger. It sees every record that reaches the root logger, before any SecretFilter
scrubbing: code must not hand secrets to logging at all.

Tests with secrets of their own call `register_secret`.
"""

from __future__ import annotations

import logging
import os

import pytest

from tests.support.harness import TEST_OPENAI_KEY

_SECRETS: set[str] = {TEST_OPENAI_KEY}
_OPTIONAL = (
    ("tests.support.fake_slack", ("BOT_TOKEN", "SIGNING_SECRET", "APP_TOKEN")),
    ("tests.support.fake_connector", ("APP_PASSWORD",)),
)


def register_secret(value: str) -> str:
    _SECRETS.add(value)
    return value


def _load_optional() -> None:
    # Other suites' fixtures define their own fake tokens; watch them too when they exist.
    import importlib

    for module_name, names in _OPTIONAL:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        _SECRETS.update(v for name in names if isinstance(v := getattr(module, name, None), str) and v)


class SecretWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []
        self.test = "(outside a test)"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += logging.Formatter().formatException(record.exc_info)
        elif record.exc_text:
            text += record.exc_text
        for secret in _SECRETS:
            if secret in text:
                self.leaks.append(f"{self.test}: logger {record.name!r} logged a test secret ({secret[:6]}…)")


_watch = SecretWatch()


# Our own code logs at every level it may use in production (LOG_LEVEL=DEBUG). Third-party loggers
# keep their levels: setup_logging holds the chatty ones at WARNING, and test_log_secrets runs the
# main flows with the root logger at DEBUG to cover the rest. Cheap: our debug logging is sparse.
_OWN_LOGGERS = ("bot", "adapters", "tools", "propbot")


def pytest_sessionstart(session: pytest.Session) -> None:
    _load_optional()
    logging.getLogger().addHandler(_watch)
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    _watch.test = item.nodeid
    # A test may replace the root handlers (setup_logging does); put the watch back.
    root = logging.getLogger()
    if _watch not in root.handlers:
        root.addHandler(_watch)
    try:
        return (yield)
    finally:
        _watch.test = "(between tests)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_watch)
    if not _watch.leaks or os.environ.get("PROPBOT_LOG_GUARD") == "off":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = sorted(set(_watch.leaks))
    if reporter is not None:
        reporter.write_sep("=", "secrets found in logs", red=True)
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def leaks() -> list[str]:
    """What the guard has caught so far (for the guard's own test)."""
    return list(_watch.leaks)


def forget(count: int) -> None:
    """Drop leaks after the first `count`: for a test that leaks on purpose to prove the guard works."""
    del _watch.leaks[count:]
