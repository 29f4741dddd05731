"""Microsoft Teams: activities in through botbuilder's CloudAdapter, Adaptive Cards out.

`mount(config)` is the one entry point the server uses.
"""

from adapters.teams.config import TeamsConfig
from adapters.teams.mount import mount

__all__ = ["TeamsConfig", "mount"]
