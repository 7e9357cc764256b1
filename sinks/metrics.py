"""What a delivery stream reports: records in and where each went, files, bytes, flushes and lag.

Every record read is accounted for once it has been flushed: `records_in = rows_written + errors +
dropped` (records still buffered when the summary is taken are `buffered`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.status_board import RUNNING

#: The `state` of a delivery stream whose consumer has no partition yet (the group has not assigned any).
WAITING_FOR_PARTITIONS = "waiting-for-partitions"


@dataclass
class SinkSummary:
    """Counters of one run of one delivery stream (like Firehose's CloudWatch metrics)."""

    name: str
    records_in: int = 0
    rows_written: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by error type
    dropped: int = 0  # by the transform hook (Dropped)
    files: int = 0
    bytes: int = 0
    flushes: Counter[str] = field(default_factory=Counter)  # by reason
    recovered_flushes: int = 0
    commit_failures: int = 0
    millis_behind_latest: int = 0
    buffered: int = 0
    #: running | waiting-for-partitions | retrying (riding out a broker outage)
    state: str = RUNNING
    partitions: int = 0
    started_monotonic: float = field(default_factory=time.monotonic)
    stopped_monotonic: float | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def elapsed_s(self) -> float:
        end = self.stopped_monotonic if self.stopped_monotonic is not None else time.monotonic()
        return max(end - self.started_monotonic, 1e-9)

    @property
    def reconciles(self) -> bool:
        return self.records_in == self.rows_written + self.error_count + self.dropped + self.buffered

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery_stream": self.name,
            "state": self.state,
            "partitions": self.partitions,
            "records_in": self.records_in,
            "rows_written": self.rows_written,
            "errors": self.error_count,
            "errors_by_type": dict(self.errors),
            "dropped": self.dropped,
            "buffered": self.buffered,
            "files": self.files,
            "bytes": self.bytes,
            "flushes": dict(self.flushes),
            "commit_failures": self.commit_failures,
            "millis_behind_latest": self.millis_behind_latest,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.records_in / self.elapsed_s, 1),
            "reconciles": self.reconciles,
        }
