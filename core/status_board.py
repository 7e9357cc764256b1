"""The status board: long-running processes publish their counters; `tidelake status` reads them.

Each process (a stream app, a delivery stream) owns one JSON file `<state_dir>/<kind>.<name>.json`,
rewritten atomically when its counters change (at most once per `interval_s`) and at least once per
heartbeat:

    {"kind": "sink", "name": "clickstream-events", "pid": 4242, "host": "a1b2c3", "pid_namespace":
     "pid:[4026531836]", "heartbeat_s": 2.0, "started_at": ..., "updated_at": ..., "stopped_at": null,
     "metrics": {"records_in": 10000, "rows_written": 9990, ...}}

Times are wall-clock seconds (Unix time), so that processes on other hosts or in other containers
sharing the folder (docker compose's state volume) can be compared; a PID means something only in
its own PID namespace.

Liveness (`ProcessStatus.alive_at`): a process is alive while its entry is fresh, i.e. rewritten
within `STALE_AFTER_HEARTBEATS` heartbeats. The publisher beats from a thread of its own, so a process
blocked in a broker-outage retry or a long flush still beats; a process killed (or frozen) stops
beating. An entry written on this host, in this PID namespace, must also have a live PID, so a
process that died is stopped at once. A process that exits normally marks its entry stopped.

Readers never see a half-written file (write to a temp name, then rename). A stopped process stays
on the board, since its last counters are the truth about that run; entries not rewritten for
`PRUNE_AFTER_S` are deleted whenever the board is read or a publisher starts writing.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import json
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from core.throttle import Throttle

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: The `state` metric of a process that publishes one: working, or waiting for Kafka to come back.
RUNNING = "running"
RETRYING = "retrying"
#: ... and of one whose run has ended (Ctrl-C, a stop condition): its last counters are final.
STOPPED = "stopped"
#: Seconds between two writes of an entry at most, counters changed or not.
HEARTBEAT_S = 2.0
#: An entry not rewritten for this many of its heartbeats belongs to a process that is gone or frozen.
#: Two writes are at most 1.5 heartbeats apart (the thread wakes every half heartbeat), which leaves
#: a busy machine 1.5 heartbeats (3 s) to schedule the thread late before a live process looks stopped.
STALE_AFTER_HEARTBEATS = 3
#: `tidelake status` shows the processes alive and those stopped within this long (`--all`: every one).
RECENT_S = 600.0
#: Entries not rewritten for this long (a day) are deleted when the board is read or written.
PRUNE_AFTER_S = 86_400.0


@functools.cache
def this_host() -> tuple[str, str]:
    """(hostname, PID namespace) of this process: a PID is comparable only when both are the same.
    The namespace is "" where /proc does not tell (then the hostname alone decides)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return socket.gethostname(), namespace


def pid_exists(pid: int) -> bool:
    """Whether a process `pid` exists in this PID namespace."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


@dataclass
class ProcessStatus:
    """One entry of the board. `host`/`pid_namespace` are "" in entries written before they were
    recorded (then only freshness tells liveness)."""

    kind: str
    name: str
    pid: int
    started_at: float
    updated_at: float
    metrics: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    pid_namespace: str = ""
    heartbeat_s: float = HEARTBEAT_S
    stopped_at: float | None = None

    @property
    def stale_after_s(self) -> float:
        """Seconds without a rewrite after which the process counts as gone."""
        return STALE_AFTER_HEARTBEATS * self.heartbeat_s

    def on_this_host(self, host: tuple[str, str] | None = None) -> bool:
        """Written in this PID namespace (`host`: (hostname, namespace), default this process's)."""
        hostname, namespace = host or this_host()
        return bool(self.host) and self.host == hostname and self.pid_namespace == namespace

    def alive_at(self, now: float, host: tuple[str, str] | None = None) -> bool:
        """Alive at `now` (Unix seconds): not marked stopped, rewritten within `stale_after_s`, and,
        when written on this host (`on_this_host`), its PID still exists."""
        if self.stopped_at is not None or now - self.updated_at > self.stale_after_s:
            return False
        return pid_exists(self.pid) if self.on_this_host(host) else True

    @property
    def alive(self) -> bool:
        """`alive_at` the current time."""
        return self.alive_at(time.time())

    def recent_at(self, now: float, host: tuple[str, str] | None = None) -> bool:
        """Alive, or stopped (marked, or last rewritten) within `RECENT_S` of `now`."""
        last_seen = self.updated_at if self.stopped_at is None else self.stopped_at
        return self.alive_at(now, host) or now - last_seen <= RECENT_S


class StatusPublisher:
    """One process's entry on the board. `publish` is cheap to call often: it writes at most once
    per `interval_s` unless `force` is given (use it for the final counters) or the `state` metric
    changed (a watcher must see "retrying" at once, not a second later).

    From the first `publish` on, a daemon thread rewrites the entry (same counters, new `updated_at`)
    whenever `heartbeat_s` have passed without a write, until `close()`, the publisher being
    garbage-collected, or the process exiting. `close()` (also called at a normal exit, and by
    `with`) marks the entry stopped. `clock` (monotonic) paces the writes; `wall_clock` (Unix
    seconds) is what the entry records; both can be given for tests."""

    def __init__(
        self,
        state_dir: Path,
        kind: str,
        name: str,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        wall_clock: Callable[[], float] = time.time,
        beat_in_background: bool = True,
    ) -> None:
        if heartbeat_s <= 0:
            msg = f"a status heartbeat must be > 0 seconds, got {heartbeat_s}"
            raise ValueError(msg)
        self.path = Path(state_dir) / f"{SAFE_NAME.sub('_', kind)}.{SAFE_NAME.sub('_', name)}.json"
        self.kind, self.name, self.interval_s, self.heartbeat_s = kind, name, interval_s, heartbeat_s
        self._clock, self._wall_clock = clock, wall_clock
        self.started_at = wall_clock()
        self._throttle = Throttle(interval_s, clock)
        self._last_state: Any = None
        self._metrics: dict[str, Any] | None = None  # last written
        self._written_at: float | None = None  # by `clock`
        self._lock = threading.Lock()
        self._closed = False
        self._background = beat_in_background
        self._stop_beating = threading.Event()
        self._at_exit: Callable[[], None] | None = None

    def publish(self, metrics: dict[str, Any], *, force: bool = False) -> None:
        """Write `metrics` to the board: always the first time, when forced or when `state` changed,
        else at most once per `interval_s`."""
        state = metrics.get("state")
        if force or state != self._last_state:
            self._throttle.reset()
        elif not self._throttle.due():
            return
        self._last_state = state
        with self._lock:
            first = self._metrics is None
            self._metrics = metrics
            self._write(create_folder=True)
        if first:
            prune(self.path.parent, self._wall_clock())
            self._start_beating()

    def beat(self) -> bool:
        """Rewrite the entry if `heartbeat_s` have passed since the last write; True if it did.
        (The background thread calls this; nothing to do before the first `publish` or after `close`.)"""
        with self._lock:
            if self._metrics is None or self._closed or self._written_at is None:
                return False
            if self._clock() - self._written_at < self.heartbeat_s:
                return False
            self._write()
            return True

    def close(self) -> None:
        """Stop beating and mark the entry stopped (once; a no-op before the first `publish`)."""
        self._stop_beating.set()
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None
        with self._lock:
            if self._closed or self._metrics is None:
                self._closed = True
                return
            self._closed = True
            with contextlib.suppress(OSError):  # the board's folder may be gone at exit
                self._write(stopped=True)

    def __enter__(self) -> StatusPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, *, stopped: bool = False, create_folder: bool = False) -> None:
        """Replace the entry. Only `publish` creates the board's folder: a heartbeat or the close at
        exit never brings back a folder someone removed."""
        hostname, namespace = this_host()
        now = self._wall_clock()
        status = {
            "kind": self.kind,
            "name": self.name,
            "pid": os.getpid(),
            "host": hostname,
            "pid_namespace": namespace,
            "heartbeat_s": self.heartbeat_s,
            "started_at": self.started_at,
            "updated_at": now,
            "stopped_at": now if stopped else None,
            "metrics": self._metrics,
        }
        if create_folder:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(status, default=str))
        temp.replace(self.path)
        self._written_at = self._clock()

    def _start_beating(self) -> None:
        if not self._background:
            return
        ref, stop = weakref.ref(self), self._stop_beating
        weakref.finalize(self, stop.set)  # collected: the thread ends at once
        self._at_exit = functools.partial(_close, ref)
        atexit.register(self._at_exit)
        threading.Thread(
            target=_beat_until_stopped, args=(ref, stop, self.heartbeat_s / 2),
            name=f"status-heartbeat-{self.kind}.{self.name}", daemon=True,
        ).start()  # fmt: skip


def _beat_until_stopped(ref: weakref.ref[StatusPublisher], stop: threading.Event, every_s: float) -> None:
    """The heartbeat thread: holds the publisher only while it beats, so it never keeps it alive.
    Waking twice per heartbeat keeps the gap between two writes under 1.5 heartbeats."""
    while not stop.wait(every_s):
        publisher = ref()
        if publisher is None:
            return
        with contextlib.suppress(OSError):  # a board folder removed under us: try again next beat
            publisher.beat()
        del publisher


def _close(ref: weakref.ref[StatusPublisher]) -> None:
    publisher = ref()
    if publisher is not None:
        publisher.close()


def prune(state_dir: Path, now: float) -> list[Path]:
    """Delete the entries not rewritten for `PRUNE_AFTER_S` before `now` (Unix seconds), and temp
    files that old (left by a crash between write and rename); the paths deleted."""
    deleted = []
    folder = Path(state_dir)
    for path in folder.glob("*.json"):
        try:
            updated_at = float(json.loads(path.read_text())["updated_at"])
        except (OSError, ValueError, TypeError, KeyError):
            continue  # being replaced, or not an entry: left alone
        if now - updated_at > PRUNE_AFTER_S:
            with contextlib.suppress(OSError):
                path.unlink()
                deleted.append(path)
    for path in folder.glob(".*.json.*.tmp"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > PRUNE_AFTER_S:
                path.unlink()
                deleted.append(path)
    return deleted


_FIELDS = {f.name for f in dataclasses.fields(ProcessStatus)}


def read_board(state_dir: Path, now: float | None = None) -> list[ProcessStatus]:
    """Every entry on the board, sorted by kind and name, after pruning those older than
    `PRUNE_AFTER_S` before `now` (Unix seconds, default the current time). Keys a newer writer
    added are ignored."""
    prune(state_dir, time.time() if now is None else now)
    entries = []
    for path in sorted(Path(state_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            entries.append(ProcessStatus(**{k: v for k, v in data.items() if k in _FIELDS}))
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # removed or replaced while we listed it, or not an entry
    return sorted(entries, key=lambda e: (e.kind, e.name))
