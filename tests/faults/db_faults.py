"""Faults at a node's database write boundaries, as the Redis proxy makes them at Redis commands.

A node gets a `Database` of its own on the suite's SQLite file; `DbFaults` listens to its engine (SQLAlchemy's
public event API) and counts every write boundary: each INSERT, UPDATE or DELETE statement and each COMMIT. Armed
with a fault at the N-th, it makes that boundary fail as the database would ("fail": the statement or commit
raises a database error, and the process goes on), or kills the process there ("kill": the node's tasks are
gone: nothing it still sends reaches the database or Redis, so what was not committed never is).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from tools.db import Database

DB_KINDS = ("fail", "kill")
_WRITES = ("INSERT", "UPDATE", "DELETE", "COMMIT")


@dataclass
class DbFault:
    at: int
    kind: str  # one of DB_KINDS


class DbFaults:
    def __init__(self, db: Database) -> None:
        self.count = 0
        self.counting = False
        self.fault: DbFault | None = None
        self.fired = False
        self.dead = False
        self.on_kill: Callable[[], None] = lambda: None
        engine = db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def arm(self, fault: DbFault | None) -> None:
        """Count from now on, and fault the `fault.at`-th boundary (None: count only)."""
        self.count, self.counting, self.fault, self.fired = 0, True, fault, False

    def disarm(self) -> None:
        self.counting = False

    def _statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        said = statement.lstrip().upper()
        if said.startswith(_WRITES):
            self._boundary()
        elif self.dead and not said.startswith("ROLLBACK"):  # a dead process's open transaction is rolled back
            raise sqlite3.OperationalError("the process was killed")

    def _commit(self, conn: Any) -> None:
        try:
            self._boundary()
        except sqlite3.OperationalError:
            # A COMMIT that fails on a disk error is rolled back by SQLite itself, and a killed process's open
            # transaction goes with its file: either way the transaction ends here, uncommitted.
            conn.connection.dbapi_connection.rollback()
            raise

    def _boundary(self) -> None:
        if self.dead:
            raise sqlite3.OperationalError("the process was killed")
        if not self.counting:
            return
        self.count += 1
        if self.fault is None or self.fired or self.count != self.fault.at:
            return
        self.fired = True
        if self.fault.kind == "kill":
            self.dead = True
            self.on_kill()
            raise sqlite3.OperationalError("the process was killed")
        raise sqlite3.OperationalError("disk I/O error")
