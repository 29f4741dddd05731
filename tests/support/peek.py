"""Looking at a conversation the way a turn does: through its lock (the store has no unlocked read)."""

from __future__ import annotations

from typing import Any

from bot.store.base import Conversations


async def take_lock(store: Conversations, conversation: str, ttl: float) -> str | None:
    """Take the conversation's lock as a turn would; its owner token, or None when someone holds it."""
    return (await store.lock_and_load(conversation, ttl)).token


async def history_of(store: Conversations, conversation: str) -> list[dict[str, Any]]:
    """The stored history, read under the lock and released at once."""
    got = await store.lock_and_load(conversation, 30)
    assert got.token is not None, f"{conversation} is locked by a turn"
    await store.release_lock(conversation, got.token)
    return got.history
