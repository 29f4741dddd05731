"""Invariants of the domain that the database itself enforces, beyond what a table's columns can say.

No two live leases of one unit overlap. On PostgreSQL that is an exclusion constraint over the lease's date range
(the `btree_gist` extension lets `property_id WITH =` sit beside the range in one GiST index); it is added to an
existing database too, since `create_all` never alters a table that exists. Where the extension may not be created
(a hosted database without the right), the constraint is left out with a warning: the lease step's serialised
check-then-insert (`Database.serialized`) still holds the invariant for every propbot process, the constraint is
the backstop against writers that are not propbot. SQLite has no such constraint; it relies on that serialised
transaction alone.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

LEASE_OVERLAP: Final = "ex_leases_no_overlap"
LIVE_LEASE: Final = "status IN ('pending', 'active')"

_EXCLUSION: Final = (
    f"ALTER TABLE leases ADD CONSTRAINT {LEASE_OVERLAP} EXCLUDE USING gist "
    f"(property_id WITH =, daterange(start_date, end_date) WITH &&) WHERE ({LIVE_LEASE})"
)


async def ensure_postgres_invariants(conn: AsyncConnection) -> None:
    """Add what is missing; runs under the schema lock of `Database.start`, so two processes never both add it."""
    found = await conn.execute(text("SELECT 1 FROM pg_constraint WHERE conname = :name"), {"name": LEASE_OVERLAP})
    if found.first() is not None:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
            await conn.execute(text(_EXCLUSION))
    except DBAPIError as exc:
        cause = exc.orig.__cause__ if exc.orig is not None else None
        log.warning(
            "leases: the no-overlap constraint could not be added (%s); propbot's own lease step still refuses "
            "overlapping leases",
            type(cause or exc).__name__,
        )
