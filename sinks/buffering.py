"""Buffering hints like Firehose's: flush on size, interval or record count, whichever comes first.

The interval runs from the oldest buffered record, and it also fires when no new record arrives
(an idle stream still delivers within the interval). Firehose keeps one buffer per prefix; tidelake
keeps one buffer per delivery stream and splits it by prefix when it flushes, so that one flush
covers a contiguous range of offsets of every Kafka partition, which is what exactly-once needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import BaseModel, Field

from sinks.records import RecordColumns

SIZE = "size"
RECORDS = "records"
INTERVAL = "interval"
IDLE = "idle"
SHUTDOWN = "shutdown"
REBALANCE = "rebalance"
RECOVERY = "recovery"
FLUSH_REASONS = (SIZE, RECORDS, INTERVAL, IDLE, SHUTDOWN, REBALANCE, RECOVERY)


class BufferPolicy(BaseModel):
    """Firehose's BufferingHints (SizeInMBs, IntervalInSeconds) plus a record count and a bound on
    the number of prefixes open at once (Firehose: 500 active partitions per stream)."""

    interval_s: float = Field(
        default=60.0,
        ge=0,
        le=900,
        description="flush when the oldest record is this old (0: after every poll that brought records, as Firehose allows)",
    )
    size_mb: float = Field(default=64.0, gt=0, le=1024, description="flush when this many MiB are buffered")
    records: int = Field(default=1_000_000, ge=1, description="flush when this many records are buffered")
    max_open_partitions: int = Field(
        default=500, ge=1, description="prefixes per flush; beyond: error output"
    )

    @property
    def max_bytes(self) -> int:
        return int(self.size_mb * 1024 * 1024)


@dataclass
class Buffer:
    """Records waiting for the next flush, in arrival order per Kafka partition (as columns:
    see `sinks.records` for why)."""

    policy: BufferPolicy
    by_partition: dict[tuple[str, int], RecordColumns] = field(default_factory=dict)
    records: int = 0
    bytes: int = 0
    oldest_monotonic: float | None = None
    #: Monotonic seconds; the delivery stream passes its own clock (tests pass one they move).
    clock: Callable[[], float] = time.monotonic

    def add(self, topic: str, partition: int, batch: Sequence[ConsumerRecord]) -> None:
        if not batch:
            return
        if self.oldest_monotonic is None:
            self.oldest_monotonic = self.clock()
        columns = self.by_partition.get((topic, partition))
        if columns is None:
            columns = self.by_partition[(topic, partition)] = RecordColumns(topic, partition)
        before = columns.value_bytes
        columns.extend(batch)
        self.records += len(batch)
        self.bytes += columns.value_bytes - before

    def due(self, now_monotonic: float, *, idle: bool) -> str | None:
        """The reason to flush now, or None. `idle` says the last poll brought no record."""
        if not self.records:
            return None
        if self.bytes >= self.policy.max_bytes:
            return SIZE
        if self.records >= self.policy.records:
            return RECORDS
        if (
            self.oldest_monotonic is not None
            and now_monotonic - self.oldest_monotonic >= self.policy.interval_s
        ):
            return IDLE if idle else INTERVAL
        return None

    def seconds_until_due(self, now_monotonic: float) -> float:
        """How long a poll may wait before the interval fires (the whole interval when empty; with an
        interval of 0 an empty buffer is never due, so the poll may wait as long as it likes)."""
        if self.oldest_monotonic is None:
            return self.policy.interval_s if self.policy.interval_s > 0 else math.inf
        return max(0.0, self.policy.interval_s - (now_monotonic - self.oldest_monotonic))

    def take(self) -> dict[tuple[str, int], RecordColumns]:
        """Everything buffered, leaving the buffer empty."""
        taken = self.by_partition
        self.by_partition = {}
        self.records = self.bytes = 0
        self.oldest_monotonic = None
        return taken

    def drop_partitions(self, partitions: Iterator[tuple[str, int]] | list[tuple[str, int]]) -> int:
        """Forget the records of partitions this consumer no longer owns (not committed: re-read by the new owner)."""
        dropped = 0
        for key in list(partitions):
            columns = self.by_partition.pop(key, None)
            if columns is not None:
                dropped += len(columns)
                self.records -= len(columns)
                self.bytes -= columns.value_bytes
        if not self.by_partition:
            self.oldest_monotonic = None
        return dropped
