"""What `tidelake serve` remembers across restarts: executions, named queries, prepared statements,
workgroups and idempotency tokens, in one SQLite file (stdlib sqlite3) beside the results.

    <results folder>/athena-state.sqlite3     (default folder: <runtime.state_dir>/query-results)

Athena keeps these for 45 days (executions) or until deleted; tidelake keeps them until deleted (a
workgroup, a named query, a prepared statement) or for good (executions: their rows are the
`<id>.csv` files beside this one). Each record is one row whose `body` is JSON; a write is one
transaction, so a killed server loses at most the write it was doing. Thread-safe: one connection
behind a lock (sqlite3 with `check_same_thread=False`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

FILE_NAME = "athena-state.sqlite3"
#: kind -> its table; every table is (key TEXT PRIMARY KEY, body TEXT JSON, seq INTEGER for order)
KINDS = ("executions", "named_queries", "prepared_statements", "workgroups", "tokens")


class AthenaState:
    """Records by kind and key, as JSON objects. Open it once per service; `close()` when done."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for kind in KINDS:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {kind} "
                "(key TEXT PRIMARY KEY, body TEXT NOT NULL, seq INTEGER NOT NULL)"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, kind: str, key: str, body: dict[str, Any]) -> None:
        """Insert or replace the record `key` of `kind`; a replaced record keeps its place in `all()`."""
        text = json.dumps(body, sort_keys=True)
        with self._lock:
            self._db.execute(
                f"INSERT INTO {_table(kind)} (key, body, seq) VALUES "
                f"(?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM {kind})) "
                "ON CONFLICT(key) DO UPDATE SET body = excluded.body",
                (key, text),
            )

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {_table(kind)} WHERE key = ?", (key,))

    def all(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Every (key, record) of `kind`, in the order they were first put."""
        with self._lock:
            rows = self._db.execute(f"SELECT key, body FROM {_table(kind)} ORDER BY seq").fetchall()
        return [(key, json.loads(body)) for key, body in rows]


def _table(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}; one of {', '.join(KINDS)}")
    return kind
