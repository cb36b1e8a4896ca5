"""The connection: one SQLite database in the data folder (the standard library's sqlite3, WAL journal,
synchronous=FULL so that a committed row survives a power cut), migrated to this version's schema, foreign keys
on, behind one re-entrant lock; transactions, nested ones as savepoints; and durable files beside it."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from cxr_edge.node.state.schema import MIGRATION_STEPS, MIGRATIONS, SCHEMA_VERSION

DATABASE = "node.sqlite3"


class Connection:
    """The database, shared by the receiver's association threads, the worker, the sender and the web screen: one
    connection behind a lock (SQLite serialises writers anyway), every write its own transaction."""

    def __init__(self, data: Path):
        self.data = data
        private_folder(data)
        path = data / DATABASE
        fresh = not path.exists()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(path, 0o600)
        self._lock = threading.RLock()  # re-entrant: a query inside a transaction runs in it, never deadlocks
        self._depth = 0  # transactions open on this connection: nested ones are savepoints
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        # after migrating (a table rebuild must not cascade); SQLite leaves it off on every new connection
        self._db.execute("PRAGMA foreign_keys = ON")

    def check_writable(self) -> None:
        """Raise the OSError or sqlite3.Error that a write would meet: a database or data folder on a read-only
        mount, or a file the service user cannot write, lets the node open and read, then refuses every image. Leaves
        nothing behind: the database keeps the version it had, the folder's file is removed."""
        with self._transaction() as db:  # rewriting the version it has is a write: refused on a read-only file
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute(f"PRAGMA user_version = {version}")
        probe = self.data / ".write-test"
        write_durably(probe, b"cxr-edge")
        probe.unlink()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.data / DATABASE}: schema version {version} is newer than this cxr-edge's "
                               f"({SCHEMA_VERSION}); upgrade cxr-edge")
        for number in range(version + 1, SCHEMA_VERSION + 1):  # each migration and its version in one transaction
            with self._transaction() as db:
                for statement in _statements(MIGRATIONS[number - 1]):  # executescript would COMMIT first
                    db.execute(statement)
                if number in MIGRATION_STEPS:
                    MIGRATION_STEPS[number](db)
                db.execute(f"PRAGMA user_version = {number}")

    def _transaction(self):
        return _Transaction(self)

    def transaction(self):
        """`with state.transaction() as db:` one write transaction, for the node's other parts (the web screen)."""
        return self._transaction()

    def query(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            return self._rows(sql, args)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, query: str, args: tuple) -> list[dict]:
        cursor = self._db.execute(query, args)
        names = [c[0] for c in cursor.description or ()]  # none for a statement that returns no rows
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _statements(script: str) -> list[str]:
    """An SQL script's statements, one by one."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s.strip(" ;\n")]


def _insert(db: sqlite3.Connection, verb: str, values: dict) -> None:
    """`verb` (INSERT ..., INSERT OR REPLACE INTO table) with the values' keys as the columns."""
    db.execute(f"{verb} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values()))


class _Transaction:
    """`with` block: the lock held, BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception). Inside another
    transaction of the same thread it is a savepoint: its work is undone alone on an exception, and kept only if
    the outer transaction commits."""

    def __init__(self, state: Connection):
        self.state, self.db = state, state._db

    def __enter__(self) -> sqlite3.Connection:
        self.state._lock.acquire()
        try:
            self.savepoint = f"nested_{self.state._depth}" if self.state._depth else None
            self.db.execute(f"SAVEPOINT {self.savepoint}" if self.savepoint else "BEGIN IMMEDIATE")
        except BaseException:
            self.state._lock.release()
            raise
        self.state._depth += 1
        return self.db

    def __exit__(self, kind, *_) -> None:
        self.state._depth -= 1
        try:
            if self.savepoint:
                if kind is not None:
                    self.db.execute(f"ROLLBACK TO {self.savepoint}")
                self.db.execute(f"RELEASE {self.savepoint}")
            elif kind is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.Error:
                    self._roll_back()  # never leave a transaction open for the next writer
                    raise
            else:
                self._roll_back()
        finally:
            self.state._lock.release()

    def _roll_back(self) -> None:
        """ROLLBACK where a transaction is still open: after a failed COMMIT (a full disk, an I/O error) SQLite has
        rolled back already, and a ROLLBACK then would raise "cannot rollback - no transaction is active" in place
        of the error that says what happened."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


def write_durably(path: Path, data: bytes) -> None:
    """`data` at `path` as a whole or not at all, and on disk (not only in the page cache) before returning: the
    file, its folder's entry for it, and a new folder's entry in its parent."""
    from cxr_edge.atomic import sync_folder, write_atomic

    new_folder = not path.parent.exists()
    private_folder(path.parent)
    if new_folder:
        sync_folder(path.parent.parent)
    write_atomic(path, data, mode=0o600)
    sync_folder(path.parent)


def private_folder(path: Path) -> None:
    """Make `path` (and its parents) if absent; the node's own folders are mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
