"""Slack: events and button clicks in through slack-bolt (HTTP or Socket Mode), Block Kit out.

`mount(config)` is the one entry point the server uses; the modules translate and decide nothing.
"""

from adapters.slack.config import SlackConfig
from adapters.slack.mount import EVENTS_PATH, mount

__all__ = ["EVENTS_PATH", "SlackConfig", "mount"]
