"""A COMMIT that fails on SQLite leaves its transaction open; SQLAlchemy returns such a connection to the pool as
if it had ended, so its write lock would stay held and every writer of every process would wait on it (found by the
fault enumeration of the outbox flows). The connection is dropped instead: the next writer writes."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tools.db import Database


async def test_a_failed_commit_does_not_leave_the_write_lock_held(sqlite_database: Database) -> None:
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        async with sqlite_database.session() as session:
            # A deferred foreign key is checked at COMMIT: the COMMIT itself fails, a real failure of the database.
            await session.execute(text("PRAGMA defer_foreign_keys = ON"))
            await session.execute(
                text(
                    "INSERT INTO tenants (id, full_name, email, property_id, created_at, created_by) "
                    "VALUES ('TN-X', 'X', 'x@example.com', 'P-NONE', '2026-01-01 00:00:00', 'test')"
                )
            )
            await session.commit()
    other = Database(sqlite_database.url)
    try:
        async with other.engine.connect() as conn:
            await conn.execute(text("PRAGMA busy_timeout = 200"))  # a held lock fails this at once, not in 30 s
            await conn.execute(text("DELETE FROM tenants WHERE id = 'TN-X'"))
            await conn.commit()
    finally:
        await other.close()
