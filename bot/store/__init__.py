"""Conversation state: history, locks, de-duplication and approvals."""

from bot.store.base import Store, StoreUnavailable

__all__ = ["Store", "StoreUnavailable"]
