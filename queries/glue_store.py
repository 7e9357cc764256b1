"""The Glue catalog's own entries: databases, tables and partitions made by CreateDatabase,
CreateTable and BatchCreatePartition, kept in one SQLite file so they survive a restart of `serve`.

    store = GlueStore(state_dir / "glue" / "catalog.sqlite3")

Each entry is kept as the JSON Glue answers for it (a `Database`, `Table` or `Partition` shape of
botocore's Glue model, timestamps as epoch seconds); names are the lower-case names Glue keeps.
The lake's own datasets are not stored here: they are found in the lake on every call
(`queries.catalog.discover`). Thread-safe: one connection behind a lock; every write is one
transaction, so a crash leaves each entry either fully there or not at all.

`GlueStore(path, read_only=True)` (what `tidelake query` opens while serve may be writing) never
creates or changes anything: a missing file is an empty catalog, and a write raises
sqlite3.OperationalError.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS databases (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    database TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (database, name));
CREATE TABLE IF NOT EXISTS partitions (
    database TEXT NOT NULL, table_name TEXT NOT NULL, vals TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (database, table_name, vals));
"""


class GlueStore:
    """Databases, tables and partitions as Glue JSON, by name; `close()` closes the file."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        if read_only:
            # an empty in-memory catalog when serve never made one; else the file, opened read-only:
            # beside a running serve (its WAL file is there) through SQLite's shared memory, else as
            # an immutable file, so that not even SQLite's -wal and -shm files are made
            running = path.with_name(path.name + "-wal").exists()
            mode = "?mode=ro" if running else "?mode=ro&immutable=1"
            where = path.resolve().as_uri() + mode if path.is_file() else ":memory:"
            self._db = sqlite3.connect(where, uri=True, check_same_thread=False, isolation_level=None)
            if where == ":memory:":
                self._db.executescript(_SCHEMA)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for (body,) in self._db.execute(sql, args).fetchall()]

    def _insert(self, sql: str, *args: Any) -> bool:
        """Run one INSERT; False when the key is taken."""
        with self._lock:
            try:
                self._db.execute(sql, args)
            except sqlite3.IntegrityError:
                return False
            return True

    def _delete(self, statements: list[tuple[str, tuple[Any, ...]]]) -> bool:
        """Run DELETEs in one transaction; whether the first one removed anything."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = 0
                for index, (sql, args) in enumerate(statements):
                    count = self._db.execute(sql, args).rowcount
                    removed = count if index == 0 else removed
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return removed > 0

    # -- databases -------------------------------------------------------------------------------
    def databases(self) -> list[dict[str, Any]]:
        return self._rows("SELECT body FROM databases ORDER BY name")

    def database(self, name: str) -> dict[str, Any] | None:
        found = self._rows("SELECT body FROM databases WHERE name = ?", name)
        return found[0] if found else None

    def add_database(self, name: str, body: dict[str, Any]) -> bool:
        return self._insert("INSERT INTO databases VALUES (?, ?)", name, json.dumps(body))

    def drop_database(self, name: str) -> bool:
        """Remove the database with its tables and their partitions (Glue drops them too)."""
        return self._delete(
            [
                ("DELETE FROM databases WHERE name = ?", (name,)),
                ("DELETE FROM tables WHERE database = ?", (name,)),
                ("DELETE FROM partitions WHERE database = ?", (name,)),
            ]
        )

    # -- tables ----------------------------------------------------------------------------------
    def tables(self, database: str) -> list[dict[str, Any]]:
        return self._rows("SELECT body FROM tables WHERE database = ? ORDER BY name", database)

    def table(self, database: str, name: str) -> dict[str, Any] | None:
        found = self._rows("SELECT body FROM tables WHERE database = ? AND name = ?", database, name)
        return found[0] if found else None

    def add_table(self, database: str, name: str, body: dict[str, Any]) -> bool:
        return self._insert("INSERT INTO tables VALUES (?, ?, ?)", database, name, json.dumps(body))

    def replace_table(self, database: str, name: str, body: dict[str, Any]) -> bool:
        """Replace a table's JSON (its partitions stay); False when there is no such table."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE tables SET body = ? WHERE database = ? AND name = ?",
                (json.dumps(body), database, name),
            )
            return cursor.rowcount > 0

    def drop_table(self, database: str, name: str) -> bool:
        return self._delete(
            [
                ("DELETE FROM tables WHERE database = ? AND name = ?", (database, name)),
                ("DELETE FROM partitions WHERE database = ? AND table_name = ?", (database, name)),
            ]
        )

    # -- partitions ------------------------------------------------------------------------------
    def partitions(self, database: str, table: str) -> list[dict[str, Any]]:
        """The table's partitions, ordered by their values."""
        return self._rows(
            "SELECT body FROM partitions WHERE database = ? AND table_name = ? ORDER BY vals", database, table
        )

    def partition(self, database: str, table: str, values: list[str]) -> dict[str, Any] | None:
        found = self._rows(
            "SELECT body FROM partitions WHERE database = ? AND table_name = ? AND vals = ?",
            database,
            table,
            json.dumps(values),
        )
        return found[0] if found else None

    def add_partition(self, database: str, table: str, values: list[str], body: dict[str, Any]) -> bool:
        return self._insert(
            "INSERT INTO partitions VALUES (?, ?, ?, ?)",
            database,
            table,
            json.dumps(values),
            json.dumps(body),
        )

    def drop_partition(self, database: str, table: str, values: list[str]) -> bool:
        return self._delete(
            [
                (
                    "DELETE FROM partitions WHERE database = ? AND table_name = ? AND vals = ?",
                    (database, table, json.dumps(values)),
                )
            ]
        )
