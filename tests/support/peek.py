"""Looking at a conversation the way a turn does."""

from __future__ import annotations

from typing import Any

from bot.store.base import Conversations


async def history_of(store: Conversations, conversation: str) -> list[dict[str, Any]]:
    """The stored history, as a turn reads it when it starts."""
    return (await store.load_history(conversation)).history
