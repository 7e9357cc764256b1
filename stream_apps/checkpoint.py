"""Snapshots of an app's engine state in its state folder, one per Kafka transaction (the role a
Faust table's RocksDB store and changelog play), written atomically so a `kill -9` leaves whole files.

Each checkpoint of a worker is one Kafka transaction (stream_apps/worker.py) numbered by a
*generation*: the transaction carries the rows, the source offsets and, as the offsets' commit
metadata, its generation; the snapshot of the state that transaction leaves behind is written under
the same generation **before** the transaction commits:

    snapshot-<generation>.pending   written (temp file, fsync, rename, fsync the folder) before the commit
    snapshot-<generation>.pickle    the same file, renamed once the commit has returned

So whichever transaction Kafka holds as committed, its snapshot is on disk, and `load` resumes from
exactly that one (`choose` has the rules): a newer file belongs to a transaction that never
committed (its rows were aborted), an older one to a state already superseded. The file is local and
trusted (pickle).

A pickle names each class of the state by its module path, so a class that moves keeps its old
path in `MOVED_CLASSES`: snapshots written before the move still load.
"""

from __future__ import annotations

import fcntl
import io
import os
import pickle
import re
from pathlib import Path
from typing import IO, Any

from core.errors import ConfigError

PENDING, CONFIRMED = ".pending", ".pickle"
_NAME = re.compile(r"snapshot-(\d+)(\.pending|\.pickle)")
#: The single snapshot file of tidelake before transactions; read as a confirmed generation 0.
LEGACY_FILE = "snapshot.pickle"
#: (module, name) a snapshot may name -> where that class lives now. stream_apps/engine.py held these
#: until it was split into records, watermarks, window_state and outbox (issue 19); snapshots written
#: before that name the old paths, and must still resume the app where it stopped.
MOVED_CLASSES = {
    ("stream_apps.engine", "Counters"): ("stream_apps.outbox", "Counters"),
    ("stream_apps.engine", "Outbox"): ("stream_apps.outbox", "Outbox"),
    ("stream_apps.engine", "OpenWindow"): ("stream_apps.window_state", "OpenWindow"),
}


class _SnapshotUnpickler(pickle.Unpickler):
    """Reads a snapshot, finding a moved class (`MOVED_CLASSES`) where it lives now."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = MOVED_CLASSES.get((module, name), (module, name))
        return super().find_class(module, name)


def read_snapshot(data: bytes) -> dict[str, Any]:
    """The state a snapshot file's bytes hold, whichever module layout wrote it."""
    state: dict[str, Any] = _SnapshotUnpickler(io.BytesIO(data)).load()
    return state


def choose(committed: int | None, pending: set[int], confirmed: set[int]) -> int | None:
    """The generation to resume from, or None to start from the beginning of the source.

    - Kafka holds generation G as committed: G's snapshot, pending or confirmed (a crash between the
      commit and the rename leaves it pending). If there is none and every file is newer than G, the
      folder started over after G (`--reset`, or deleted) and this run starts from the beginning too;
      a folder with files older than G but not G did not write G: ConfigError.
    - Nothing committed (first run, or the group's offsets were deleted): the newest confirmed
      snapshot; pending ones never committed. None without one.
    """
    if committed is not None:
        if committed in pending or committed in confirmed:
            return committed
        if any(g < committed for g in pending | confirmed):
            msg = (
                f"Kafka holds checkpoint {committed} of this app as committed, but its state folder has no "
                f"snapshot of it (it has {sorted(pending | confirmed)}): the folder belongs to another run. "
                "Use the folder that ran this app, or --reset to start it from the beginning of its source"
            )
            raise ConfigError(msg)
        return None
    return max(confirmed) if confirmed else None


class StateFolder:
    """`<state_dir>/<app>/`: the generation snapshots and a lock that keeps a second worker out."""

    def __init__(self, root: Path, app_name: str) -> None:
        self.path = Path(root) / app_name
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

    def file(self, generation: int, suffix: str) -> Path:
        return self.path / f"snapshot-{generation:012d}{suffix}"

    def _files(self) -> tuple[set[int], set[int]]:
        pending: set[int] = set()
        confirmed: set[int] = set()
        for path in self.path.glob("snapshot-*"):
            match = _NAME.fullmatch(path.name)
            if match:
                (pending if match[2] == PENDING else confirmed).add(int(match[1]))
        if (self.path / LEGACY_FILE).exists():
            confirmed.add(0)
        return pending, confirmed

    def load(self, fingerprint: str, committed: int | None) -> tuple[dict[str, Any] | None, int]:
        """The snapshot to resume from (see `choose`) or None, and the generation of the next
        checkpoint. Removes every other snapshot; ConfigError if it was written by a different spec."""
        pending, confirmed = self._files()
        chosen = choose(committed, pending, confirmed)
        next_generation = max([committed or 0, *pending, *confirmed]) + 1
        state = None
        if chosen is not None:
            path = self._path_of(chosen, pending)
            state = read_snapshot(path.read_bytes())
            if state.get("fingerprint") != fingerprint:
                msg = (
                    f"the state in {self.path} was written by a different spec ({state.get('fingerprint')!r}); "
                    "delete that folder or run with --reset to start this app from the beginning of its source"
                )
                raise ConfigError(msg)
        for generation in pending | confirmed:
            if generation != chosen:
                self._path_of(generation, pending).unlink()
        return state, next_generation

    def _path_of(self, generation: int, pending: set[int]) -> Path:
        if generation in pending:
            return self.file(generation, PENDING)
        if generation == 0:
            return self.path / LEGACY_FILE
        return self.file(generation, CONFIRMED)

    def save_pending(self, generation: int, state: dict[str, Any]) -> int:
        """Write the snapshot of `generation` durably (temp file, fsync, rename, fsync the folder),
        before its transaction commits; return the bytes written."""
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        target = self.file(generation, PENDING)
        temp = target.with_suffix(".tmp")
        with temp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
        folder = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return len(data)

    def confirm(self, generation: int) -> None:
        """Its transaction committed: mark the snapshot so and drop the older ones. Not fsynced: the
        mark only matters when Kafka has forgotten the committed generation (see `choose`)."""
        os.replace(self.file(generation, PENDING), self.file(generation, CONFIRMED))
        pending, confirmed = self._files()
        for older in pending | confirmed:
            if older < generation:
                self._path_of(older, pending).unlink(missing_ok=True)

    def reset(self) -> None:
        pending, confirmed = self._files()
        for generation in pending | confirmed:
            self._path_of(generation, pending).unlink(missing_ok=True)
