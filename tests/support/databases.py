"""Database fixtures (a pytest plugin): tests that take `database` run on SQLite and on PostgreSQL.

PostgreSQL tests each get a freshly created database with a unique name, so they are isolated from
each other and from anyone else running the suite against the same server at the same time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tools.db import Database, normalize_url

POSTGRES_URL_ENV: Final = "PROPBOT_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV: Final = "PROPBOT_REQUIRE_POSTGRES"
DEFAULT_POSTGRES_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
_CONNECT_TIMEOUT_S: Final = 5

# Probed once per session: every postgres test would otherwise wait out the connect timeout again.
_postgres_probe: dict[str, str | None] = {}


def postgres_server_url() -> URL:
    """The database the tests connect to for creating and dropping their own databases."""
    return normalize_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)


async def _probe_postgres(url: URL) -> str | None:
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": _CONNECT_TIMEOUT_S})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return f"PostgreSQL at {url} does not answer: {type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        await engine.dispose()
    return None


async def require_postgres() -> URL:
    """The server URL; skips the test when PostgreSQL is down, or fails it if PostgreSQL is required."""
    url = postgres_server_url()
    key = url.render_as_string(hide_password=False)
    if key not in _postgres_probe:
        _postgres_probe[key] = await _probe_postgres(url)
    problem = _postgres_probe[key]
    if problem is not None:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{problem} (and {REQUIRE_POSTGRES_ENV}=1 forbids skipping)", pytrace=False)
        pytest.skip(problem)
    return url


@asynccontextmanager
async def fresh_postgres_database(server: URL) -> AsyncIterator[URL]:
    """Create an empty, uniquely named database on `server`; drop it afterwards."""
    name = f"propbot_test_{uuid.uuid4().hex[:16]}"
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    admin = create_async_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name)
    finally:
        try:
            async with admin.connect() as conn:
                # FORCE: a test that failed mid-way may have left connections open.
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await admin.dispose()


def _sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'propbot.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database (no tables), once per backend."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    server = await require_postgres()
    async with fresh_postgres_database(server) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A started, seeded `Database`, once per backend."""
    db = Database(database_url)
    try:
        await db.start()
        yield db
    finally:
        await db.close()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A started, seeded SQLite `Database`, for tests where the backend does not matter."""
    db = Database(_sqlite_url(tmp_path))
    try:
        await db.start()
        yield db
    finally:
        await db.close()
