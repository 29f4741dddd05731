"""What the Slack adapter needs to know, handed over by the composition root (bot.app.platforms), which alone
reads the settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str | None
    signing_secret: str | None
    app_token: str | None = None  # Socket Mode when set
    api_url: str = "https://slack.com/api/"
    streaming: bool = True  # answers streamed into threads where the workspace allows
    stream_interval: float = 0.5  # seconds between two updates of one streamed answer
    # A channel thread is a conversation of its own (its own history and turn order); false: one per channel.
    thread_memory: bool = False
