"""Conversation state: history, locks, de-duplication and approvals."""

from bot.store.base import Busy, Store, StoreUnavailable

__all__ = ["Busy", "Store", "StoreUnavailable"]
