"""Where the maintenance team hears about changes: MAINTENANCE_CHANNELS, e.g.
`Austin=slack:C0AUSTIN;teams:19:abc@thread.tacv2,P-1001=slack:C0P1001,*=slack:C0ALL`.

Each entry is a property id, a city or `*`, then `=`, then one or more `platform:channel` targets separated by
`;`. A property's own entry wins over its city's, which wins over `*`. A Teams target is the channel's
conversation id; propbot can post there once it has seen the channel (it was added to the team, or mentioned
there), because posting into Teams needs the conversation reference Teams sent it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from bot.errors import ConfigError
from bot.types import Platform, TeamNotice


class ChannelsError(ConfigError):
    """MAINTENANCE_CHANNELS cannot be read; the message names the entry."""


@dataclass(frozen=True)
class TeamChannels:
    routes: dict[str, list[tuple[Platform, str]]] = field(default_factory=dict)

    def targets(self, notice: TeamNotice) -> list[tuple[Platform, str]]:
        for key in (notice.property_id.upper(), notice.city.casefold(), "*"):
            if key in self.routes:
                return self.routes[key]
        return []

    @classmethod
    def parse(cls, text: str) -> TeamChannels:
        routes: dict[str, list[tuple[Platform, str]]] = {}
        platforms = set(get_args(Platform))
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            key, sep, targets = entry.partition("=")
            if not sep or not key.strip():
                raise ChannelsError(f"MAINTENANCE_CHANNELS: {entry!r} is not <property, city or *>=<targets>")
            found: list[tuple[Platform, str]] = []
            for target in (t.strip() for t in targets.split(";") if t.strip()):
                platform, colon, channel = target.partition(":")
                if not colon or platform not in platforms or not channel:
                    raise ChannelsError(f"MAINTENANCE_CHANNELS: {target!r} is not slack:<channel> or teams:<id>")
                found.append((platform, channel))  # type: ignore[arg-type]  # checked against Platform above
            name = key.strip()
            routes[name.upper() if name.upper().startswith("P-") else name.casefold()] = found
        return cls(routes)
