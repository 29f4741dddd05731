"""Shared fixtures live in tests/support; each module there is a pytest plugin."""

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.databases",
    "tests.support.fake_openai",
    "tests.support.harness",
    "tests.support.fake_connector",
    "tests.support.fake_slack",
    "tests.support.fake_socket_mode",
    "tests.support.fake_identity",
    "tests.support.fake_graph",
    "tests.support.log_guard",
]
