"""Conversation state: history, locks, de-duplication and approvals."""

from bot.store.base import Store

__all__ = ["Store"]
