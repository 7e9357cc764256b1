"""Durable snapshots of an app's engine state in its state folder (the role a Faust table's
RocksDB store plays), written atomically so a `kill -9` leaves either the old or the new one.

The snapshot holds the next offset of every partition, the open windows, the watermarks and the
outbox of rows not yet known to be written. The file is local and trusted (pickle).
"""

from __future__ import annotations

import fcntl
import os
import pickle
from pathlib import Path
from typing import IO, Any

from core.errors import ConfigError


class StateFolder:
    """`<state_dir>/<app>/`: the snapshot file and a lock that keeps a second worker out."""

    def __init__(self, root: Path, app_name: str) -> None:
        self.path = Path(root) / app_name
        self.snapshot_file = self.path / "snapshot.pickle"
        self._lock: IO[str] | None = None

    def lock(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / "LOCK").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            msg = (
                f"another worker holds the state folder {self.path}; stop it, or give this one its own "
                "--state-dir (and a different app name)"
            )
            raise ConfigError(msg) from exc
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self, fingerprint: str) -> dict[str, Any] | None:
        """The last snapshot, or None; ConfigError if it was written by a different spec."""
        try:
            data = self.snapshot_file.read_bytes()
        except FileNotFoundError:
            return None
        state = pickle.loads(data)
        if state.get("fingerprint") != fingerprint:
            msg = (
                f"the state in {self.path} was written by a different spec ({state.get('fingerprint')!r}); "
                "delete that folder or run with --reset to start this app from the beginning of its source"
            )
            raise ConfigError(msg)
        return state

    def save(self, state: dict[str, Any]) -> int:
        """Write atomically (temp file, fsync, rename, fsync the folder); return the bytes written."""
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        temp = self.snapshot_file.with_suffix(".tmp")
        with temp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.snapshot_file)
        folder = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return len(data)

    def reset(self) -> None:
        self.snapshot_file.unlink(missing_ok=True)
