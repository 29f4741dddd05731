"""The composition root: the `propbot` commands, the HTTP server, and the one place that builds the core from
Settings and imports the adapters."""

from bot.app.cli import main

__all__ = ["main"]
