"""The property database: one async SQLAlchemy engine for SQLite (development) or PostgreSQL.

Several bot processes may start against the same database at once, so `start()` serialises schema
creation and seeding inside the database itself (an advisory lock on PostgreSQL, the write lock on
SQLite) instead of trusting a check-then-create sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from sqlalchemy import event, func, insert, inspect, select, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from tools.invariants import ensure_postgres_invariants
from tools.sample_data import SAMPLE_LEASES, SAMPLE_MAINTENANCE_REQUESTS, SAMPLE_PROPERTIES, SAMPLE_TENANTS
from tools.tables import Base, Lease, MaintenanceRequest, Property, Tenant

log = logging.getLogger(__name__)

_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS: Final = frozenset(
    {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2"}
)

# Any constant works as long as every propbot process uses the same one; it only has to avoid
# colliding with advisory locks taken by other applications sharing the database.
_SCHEMA_LOCK_KEY: Final = 0x70726F70626F74  # "propbot"

# How long a SQLite connection waits for another writer before giving up. Writers only hold the
# lock for a single short transaction, so this is generous.
_SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
_SQLITE_WAL_ATTEMPTS: Final = 40


def normalize_url(url: str | URL) -> URL:
    """`url` rewritten to name an async driver (aiosqlite / asyncpg); ValueError if unsupported."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        # Both messages can quote part of the URL, and the URL can carry a password: say nothing of it.
        raise ValueError(
            "it cannot be parsed as a URL (use sqlite:///path.db or postgresql://user:password@host/db)"
        ) from None
    driver = parsed.drivername
    if driver in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+aiosqlite")
    if driver in _POSTGRES_DRIVERS:
        parsed = parsed.set(drivername="postgresql+asyncpg")
        # libpq-style URLs (Heroku, most hosted PostgreSQL) say sslmode=...; asyncpg calls it ssl
        # and fails on the unknown keyword.
        if "sslmode" in parsed.query and "ssl" not in parsed.query:
            parsed = parsed.update_query_dict({"ssl": parsed.query["sslmode"]}).difference_update_query(["sslmode"])
        return parsed
    raise ValueError(f"unsupported database URL scheme {driver!r}: use sqlite:///path.db or postgresql://user@host/db")


class Database:
    """Owns the engine and hands out sessions: `async with db.session() as s: ...`."""

    def __init__(self, url: str | URL, *, echo: bool = False, pool_size: int | None = None) -> None:
        self._url = normalize_url(url)
        self.dialect: Final[str] = self._url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        # SQLAlchemy's default pool is 5 connections + 10 overflow.
        self.connections: Final[int] = pool_size or 15
        if pool_size:
            kwargs.update(pool_size=pool_size, max_overflow=0)
        if self.dialect == "postgresql":
            # A connection dropped by a restart or an idle timeout is replaced instead of failing
            # the next tool call.
            kwargs["pool_pre_ping"] = True
        self._engine: AsyncEngine = create_async_engine(self._url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _configure_sqlite)
            event.listen(self._engine.sync_engine, "handle_error", _drop_after_failed_commit)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @property
    def url(self) -> URL:
        """The normalised URL (its str() hides the password)."""
        return self._url

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def describe_url(self) -> str:
        """The URL with any password masked, for logs and health output."""
        return self._url.render_as_string(hide_password=True)

    def session(self) -> AsyncSession:
        """A new session; use it as `async with db.session() as session:`."""
        return self._sessions()

    @asynccontextmanager
    async def serialized(self, key: str) -> AsyncIterator[AsyncConnection]:
        """One write transaction that runs alone among every other `serialized(key)` of any process: a check and
        the write it allows (is the unit free? then lease it) cannot interleave with another's. PostgreSQL takes a
        transaction-scoped advisory lock on `key`; SQLite has one writer at a time, and BEGIN IMMEDIATE takes its
        lock before the check instead of at the first write, when the check would already be stale."""
        async with self._engine.connect() as conn:
            if self.dialect == "postgresql":
                async with conn.begin():
                    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
                    yield conn
                return
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.exec_driver_sql("COMMIT")
            except BaseException:
                # A COMMIT that failed (the disk, a busy database) leaves the transaction open, holding the write
                # lock every other writer waits for: it is rolled back here, whatever failed.
                with contextlib.suppress(Exception):
                    await conn.exec_driver_sql("ROLLBACK")
                raise

    async def start(self, seed: bool = True) -> None:
        """Create missing tables and, if `seed` and there are no properties yet, load the sample data."""
        if self.dialect == "sqlite":
            await self._enable_wal()
        async with self._engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
                await self._create_and_seed(conn, seed)
                await conn.commit()
            else:
                # BEGIN IMMEDIATE takes SQLite's write lock up front, so a second process waits
                # (busy timeout) until the first has created and seeded everything, then sees it.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    await self._create_and_seed(conn, seed)
                except BaseException:
                    await conn.exec_driver_sql("ROLLBACK")
                    raise
                await conn.exec_driver_sql("COMMIT")
        log.debug("database ready at %s", self.describe_url())

    async def _enable_wal(self) -> None:
        # WAL lets readers proceed while one writer commits, which is what a bot with several
        # concurrent conversations needs. The mode is stored in the database file, so setting it
        # once here covers every later connection, from any process. Switching needs an exclusive
        # lock and SQLite reports "locked" at once instead of waiting, hence the retry loop.
        for attempt in range(_SQLITE_WAL_ATTEMPTS):
            try:
                async with self._engine.connect() as conn:
                    mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                    if mode in ("wal", "memory"):
                        return
                    await conn.exec_driver_sql("PRAGMA journal_mode = WAL")
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == _SQLITE_WAL_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def _create_and_seed(self, conn: AsyncConnection, seed: bool) -> None:
        await conn.run_sync(Base.metadata.create_all)
        if self.dialect == "postgresql":
            await ensure_postgres_invariants(conn)
        if not seed:
            return
        count = (await conn.execute(select(func.count()).select_from(Property))).scalar_one()
        if count:
            return
        await conn.execute(insert(Property), [dict(row) for row in SAMPLE_PROPERTIES])
        await conn.execute(insert(MaintenanceRequest), [dict(row) for row in SAMPLE_MAINTENANCE_REQUESTS])
        await conn.execute(insert(Tenant), [dict(row) for row in SAMPLE_TENANTS])
        await conn.execute(insert(Lease), [dict(row) for row in SAMPLE_LEASES])
        log.info(
            "seeded %d properties and %d maintenance requests",
            len(SAMPLE_PROPERTIES),
            len(SAMPLE_MAINTENANCE_REQUESTS),
        )

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("database ping failed for %s: %s", self.describe_url(), exc)
            return False
        return True

    async def survey(self, within: float = 5.0) -> str:
        """What the database holds, found without changing anything (for `propbot check`): SQLite is opened
        read-only and a missing file is reported, never created; PostgreSQL gets one short-lived connection.
        Raises DatabaseUnavailable with one line that carries no password."""
        if self.dialect == "sqlite":
            where = await asyncio.to_thread(_existing_sqlite_file, self._url.database)
            if isinstance(where, str):
                return where
            # mode=ro: the connection cannot create or change the file. Without a -wal file no process has the
            # database open in WAL mode and every commit is in the main file, so immutable=1 reads it without
            # leaving the -wal/-shm files a read-only WAL reader would otherwise create (and could not remove).
            query = {"mode": "ro", "uri": "true"}
            if not await asyncio.to_thread(where.with_name(where.name + "-wal").exists):
                query["immutable"] = "1"
            url = URL.create("sqlite+aiosqlite", database=f"file:{quote(str(where))}", query=query)
            engine = create_async_engine(url, poolclass=NullPool)
        else:
            engine = create_async_engine(self._url, poolclass=NullPool, connect_args={"timeout": within})
        try:
            async with asyncio.timeout(within), engine.connect() as conn:
                tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
                if Property.__tablename__ not in tables:
                    return "answers; no propbot tables yet: `propbot serve` creates them"
                properties = (await conn.execute(select(func.count()).select_from(Property))).scalar_one()
                requests = (await conn.execute(select(func.count()).select_from(MaintenanceRequest))).scalar_one()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            # The driver's message can quote the URL and its password: the class names the problem well enough.
            cause: BaseException = exc
            if isinstance(exc, DBAPIError) and exc.orig is not None:
                # SQLAlchemy's adapted driver error wraps the driver's own, whose class says the most.
                cause = exc.orig.__cause__ or exc.orig
            raise DatabaseUnavailable(f"cannot be read ({type(cause).__name__})") from None
        finally:
            await engine.dispose()
        return f"answers: {properties} properties, {requests} maintenance requests"

    async def close(self) -> None:
        await self._engine.dispose()


class DatabaseUnavailable(Exception):
    """One line about what is wrong with the database, without the URL."""


def _existing_sqlite_file(database: str | None) -> Path | str:
    """The SQLite file to open read-only, or a sentence when there is nothing to open yet."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return "SQLite in memory or a URI: nothing to look at before start-up"
    where = Path(database).resolve()
    if not where.exists():
        if os.access(where.parent, os.W_OK | os.X_OK):
            return "no file yet: `propbot serve` creates it and loads the sample data"
        raise DatabaseUnavailable(f"no file yet, and {where.parent} is not a directory propbot can write to")
    if not os.access(where, os.R_OK):
        raise DatabaseUnavailable(f"{where} cannot be read by this user")
    return where


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _drop_after_failed_commit(context: ExceptionContext) -> None:
    """A COMMIT (or ROLLBACK) that failed on SQLite can leave its transaction open, and SQLAlchemy, which counts it
    as ended, returns the connection to the pool without rolling back: the write lock stays held and every writer
    of every process waits on it. Such a connection is closed instead (SQLite then rolls the transaction back)."""
    if context.statement is None and context.connection is not None:
        context.is_disconnect = True
