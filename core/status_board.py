"""The status board: long-running processes publish their counters; `tidelake status` reads them.

Each process (a stream app, a delivery stream, a replay) owns one JSON file
`<state_dir>/<kind>.<name>.json`, rewritten atomically at most once per `interval_s`:

    {"kind": "sink", "name": "clickstream-events", "pid": 4242, "started_at": ..., "updated_at": ...,
     "metrics": {"records_in": 10000, "rows_written": 9990, ...}}

Readers never see a half-written file (write to a temp name, then rename). A file whose process is
gone is reported as stopped, not hidden: its last counters are still the truth about that run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.throttle import Throttle

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: The `state` metric of a process that publishes one: working, or waiting for Kafka to come back.
RUNNING = "running"
RETRYING = "retrying"


@dataclass
class ProcessStatus:
    kind: str
    name: str
    pid: int
    started_at: float
    updated_at: float
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, owned by someone else
            return True
        return True


class StatusPublisher:
    """One process's entry on the board. `publish` is cheap to call often: it writes at most once
    per `interval_s` unless `force` is given (use it for the final counters) or the `state` metric
    changed (a watcher must see "retrying" at once, not a second later)."""

    def __init__(
        self,
        state_dir: Path,
        kind: str,
        name: str,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(state_dir) / f"{SAFE_NAME.sub('_', kind)}.{SAFE_NAME.sub('_', name)}.json"
        self.kind, self.name, self.interval_s = kind, name, interval_s
        self.started_at = time.time()
        self._throttle = Throttle(interval_s, clock)
        self._last_state: Any = None

    def publish(self, metrics: dict[str, Any], *, force: bool = False) -> None:
        """Write `metrics` to the board: always the first time, when forced or when `state` changed,
        else at most once per `interval_s`."""
        state = metrics.get("state")
        if force or state != self._last_state:
            self._throttle.reset()
        elif not self._throttle.due():
            return
        self._last_state = state
        status = {
            "kind": self.kind,
            "name": self.name,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": time.time(),
            "metrics": metrics,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(status, default=str))
        temp.replace(self.path)


def read_board(state_dir: Path) -> list[ProcessStatus]:
    """Every entry on the board, sorted by kind and name."""
    entries = []
    for path in sorted(Path(state_dir).glob("*.json")):
        try:
            entries.append(ProcessStatus(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # removed or replaced while we listed it
    return sorted(entries, key=lambda e: (e.kind, e.name))
