"""What day and time it is for the person asking, in words the model reads at the head of their message.

The model writes dates ("tomorrow", "the 1st of next month") as YYYY-MM-DD and knows no date of its own. The stamp
goes into the user's message, not the system prompt, so the prompt's cached prefix stays the same from turn to
turn; and it stays in the history, so "yesterday you said…" reads right later on."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_of(name: str | None) -> ZoneInfo:
    """The person's time zone (an IANA name as Slack and Teams give it), or UTC when there is none or it is unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def stamp(at: float, zone: str | None) -> str:
    """`[Tuesday 2026-12-08 00:30 Pacific/Auckland]`: when the message was sent, where its sender is."""
    tz = zone_of(zone)
    local = dt.datetime.fromtimestamp(at, tz)
    return f"[{local:%A %Y-%m-%d %H:%M} {tz.key}]"
