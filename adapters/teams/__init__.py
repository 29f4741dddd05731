"""Microsoft Teams: activities in through botbuilder's CloudAdapter, Adaptive Cards out.

`mount` (or `make_mount` with other timings) is the one entry point the server uses.
"""

from adapters.teams.mount import make_mount, mount

__all__ = ["make_mount", "mount"]
