"""What Kafka does not keep about a Kinesis stream: its capacity mode and when it was created.

A stream is a topic, and Kafka knows its partitions and retention, but not whether it was made
`ON_DEMAND` nor when. This registry (SQLite, under the state folder, so it outlives a restart of
`tidelake serve`) keeps one row per stream: name, mode, creation time and whether CreateStream made
it. A topic made some other way (`tidelake topics create`, the demo) gets a row the first time the
API describes it: mode `PROVISIONED`, created "when first seen", not made by CreateStream.
`tidelake status` lists the streams CreateStream made (`created_streams`).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

REGISTRY_FILE = "kinesis-streams.sqlite"
#: The registry's folder under `runtime.state_dir` (`tidelake serve` keeps it there).
REGISTRY_DIR = "kinesis"


@dataclass(frozen=True)
class StreamRecord:
    name: str
    mode: str  # PROVISIONED | ON_DEMAND
    created_s: float  # epoch seconds
    by_create_stream: bool = False  # made by CreateStream (not a topic first seen by the API)


class StreamRegistry:
    """Rows of streams, thread-safe; `state_dir=None` keeps them in memory (tests)."""

    def __init__(self, state_dir: Path | None) -> None:
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
        target = str(state_dir / REGISTRY_FILE) if state_dir is not None else ":memory:"
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS streams (name TEXT PRIMARY KEY, mode TEXT NOT NULL, created REAL NOT NULL,"
                " by_create_stream INTEGER NOT NULL DEFAULT 0)"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(streams)")}
            if "by_create_stream" not in columns:  # a registry written before the column existed
                self._db.execute("ALTER TABLE streams ADD COLUMN by_create_stream INTEGER NOT NULL DEFAULT 0")

    def put(self, name: str, mode: str, created_s: float) -> None:
        """Record a stream just created (replacing a row left by a stream deleted outside the API)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO streams VALUES (?, ?, ?, 1)", (name, mode, created_s))

    def get(self, name: str, now_s: float) -> StreamRecord:
        """The stream's row; a stream never seen before is recorded as PROVISIONED, created now."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO streams VALUES (?, 'PROVISIONED', ?, 0)", (name, now_s))
            row = self._db.execute(
                "SELECT name, mode, created, by_create_stream FROM streams WHERE name = ?", (name,)
            ).fetchone()
        return StreamRecord(row[0], row[1], row[2], bool(row[3]))

    def created_streams(self) -> list[StreamRecord]:
        """The streams CreateStream made, by name (rows of streams since deleted outside the API
        included: the caller knows which topics exist)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, mode, created, by_create_stream FROM streams WHERE by_create_stream = 1 ORDER BY name"
            ).fetchall()
        return [StreamRecord(name, mode, created, True) for name, mode, created, _ in rows]

    def forget(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM streams WHERE name = ?", (name,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
