"""Firehose streams made through the API: their stored definitions and their supervised sinks.

    store = DefinitionStore(state_dir / "firehose")      # <name>.json per stream, atomic writes
    runner = SupervisedSink(name, delivery, settings)    # a thread running DeliveryStream.run
    runner.start(); ...; runner.stop(); runner.join()

A definition is the CreateDeliveryStream request as given plus what tidelake decided (the topic,
the creation time, `DELETING` once a delete began), so `tidelake serve` brings every stream back
after a restart, and finishes a delete it was killed in.

A `SupervisedSink` runs one `sinks.stream.DeliveryStream` in a thread of its own (in-process, as
`tidelake sink run` runs it in a process) and restarts it after a failure, with backoff from 1 s to
30 s: a crash of a sink never reaches `serve`. Its status is Firehose's: `CREATING` until the sink's
consumer holds its partitions, then `ACTIVE`; a sink that fails before it was ever active because
its config is refused (e.g. a dataset another delivery stream owns) is `CREATING_FAILED`. Progress
goes to the status board (`core.status_board`, kind `sink`) as `tidelake sink run` publishes it, so
`tidelake status` lists these streams beside the others.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.lake import temp_name
from core.settings import Settings
from core.status_board import RUNNING, StatusPublisher
from sinks.firehose_config import FirehoseDelivery
from sinks.metrics import SinkSummary
from sinks.stream import DeliveryStream

log = logging.getLogger(__name__)

CREATING, CREATING_FAILED, ACTIVE, DELETING = "CREATING", "CREATING_FAILED", "ACTIVE", "DELETING"
#: Backoff between restarts of a failed sink: doubles from the first to the last (seconds).
RESTART_BACKOFF_S = (1.0, 30.0)
#: How long a stopping sink may take to flush and commit what it holds.
STOP_TIMEOUT_S = 60.0


class DefinitionStore:
    """`<folder>/<name>.json` per stream; thread-safe; each write is atomic (temp file, fsync, rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def put(self, name: str, definition: dict[str, Any]) -> None:
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self._path(name)
            temp = path.with_name(temp_name(path.name))
            with temp.open("w") as handle:
                handle.write(json.dumps(definition, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(path)

    def forget(self, name: str) -> None:
        with self._lock:
            self._path(name).unlink(missing_ok=True)

    def load(self) -> dict[str, dict[str, Any]]:
        """Every stored definition by name (one that does not parse is skipped, with a warning)."""
        found: dict[str, dict[str, Any]] = {}
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):  # a write in progress ends in .tmp
            try:
                definition = json.loads(path.read_text())
                found[str(definition["name"])] = definition
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping the Firehose stream definition %s: %s", path, exc)
        return found


class SupervisedSink:
    """One Firehose stream's sink in a thread, restarted after failures (see the module docstring)."""

    def __init__(
        self,
        name: str,
        delivery: FirehoseDelivery,
        settings: Settings,
        *,
        backoff_s: tuple[float, float] = RESTART_BACKOFF_S,
    ) -> None:
        self.name = name
        self.delivery = delivery
        self.settings = settings
        self.backoff_s = backoff_s
        self.status = CREATING
        self.failure: str | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._stream: DeliveryStream | None = None
        self._board = StatusPublisher(settings.runtime.state_dir, "sink", delivery.config.name)
        self._thread = threading.Thread(target=self._supervise, name=f"firehose-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the sink to flush what it holds, commit and stop (returns at once; see `join`)."""
        self._stop.set()

    def request_flush(self) -> bool:
        """Ask the running sink to flush what it holds, as its buffering interval would
        (`DeliveryStream.request_flush`); False when no sink is running right now (starting, or
        between restarts)."""
        stream = self._stream
        if stream is None:
            return False
        stream.request_flush()
        return True

    def join(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Wait for the sink's thread; True when it has ended."""
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _progress(self, summary: SinkSummary) -> None:
        if summary.state == RUNNING and summary.partitions > 0 and self.status == CREATING:
            self.status = ACTIVE
            self.failure = None
        self._board.publish(summary.as_dict())

    def _supervise(self) -> None:
        backoff, longest = self.backoff_s
        try:
            while not self._stop.is_set():
                try:
                    stream = DeliveryStream(
                        self.delivery.config,
                        self.settings,
                        handler=self.delivery.handler(),
                        on_progress=self._progress,
                    )
                    self._stream = stream
                    try:
                        summary = stream.run(stop_event=self._stop)
                    finally:
                        self._stream = None
                    self._board.publish(summary.as_dict(), force=True)
                    if self._stop.is_set():
                        return
                    self.failure = "the sink stopped by itself"
                except Exception as exc:  # a sink's failure must never reach serve: restart it
                    self.failure = f"{exc.__class__.__name__}: {exc}"
                    if isinstance(exc, ConfigError) and self.status == CREATING:
                        self.status = CREATING_FAILED
                        log.error("Firehose stream %s cannot start: %s", self.name, exc)
                        return
                    log.warning(
                        "Firehose stream %s: the sink failed (%s); restarting in %.0f s",
                        self.name,
                        self.failure,
                        backoff,
                    )
                self.restarts += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, longest)
        finally:
            self._board.close()
