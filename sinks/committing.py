"""Committing a flush's offsets (step 4 of `sinks.stream`'s flush order), riding out broker outages.

A Kafka call that cannot reach the broker is retried with backoff for up to `max_outage_s` (state
`retrying`), while the flush's files stay listed in its manifest (`ride_out`; the poll loop reads
through it too). Whether the commit lands late, or never because the stream stops (or a rebalance
hands the partition on) first, the records stay exactly-once: a committed range is never written
again, and an uncommitted one is rolled forward from its manifest by the next owner
(`sinks.recovery`), which rewrites the same files under the same names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from core.errors import SinkWriteError
from core.status_board import RETRYING, RUNNING
from sinks.manifest import ManifestStore
from sinks.metrics import SinkSummary
from sinks.planning import PartitionPlan

log = logging.getLogger(__name__)
_T = TypeVar("_T")
#: How long a delivery stream rides out a broker outage (commits retried) before it gives up.
DEFAULT_MAX_OUTAGE_S = 120.0
#: Backoff between commit attempts during an outage: doubles from the first to the last.
COMMIT_RETRY_BACKOFF_S = (0.5, 5.0)


class Committer:
    """Commits one delivery stream's offsets after its flushes, through broker outages; `consumer`,
    `stop` and `max_outage_s` are the running stream's (set when it starts)."""

    def __init__(
        self,
        name: str,
        manifests: ManifestStore,
        summary: SinkSummary,
        set_state: Callable[[str], None],
    ) -> None:
        self.name = name
        self.manifests = manifests
        self.summary = summary
        self._set_state = set_state
        self.consumer: KafkaConsumer | None = None
        self.stop: threading.Event | None = None
        self.max_outage_s = DEFAULT_MAX_OUTAGE_S

    def commit(self, plans: list[PartitionPlan]) -> bool:
        """Commit the offsets after `plans`; True when they are committed. During a broker outage
        the commit is retried with backoff for up to `max_outage_s` (state `retrying`); after that,
        or when the stream is asked to stop meanwhile, SinkWriteError (the manifest finishes it)."""
        if self.consumer is None or not plans:
            return True
        offsets = {TopicPartition(p.topic, p.partition): OffsetAndMetadata(p.end + 1, "", -1) for p in plans}
        consumer = self.consumer

        def gave_up(exc: KafkaError, why: str) -> Exception:
            return SinkWriteError(
                f"delivery stream {self.name}: files are written but the offsets could not be "
                f"committed ({exc.__class__.__name__}: {exc}; gave up: {why}); the next run finishes "
                "the flush from its manifest"
            )

        try:
            self.ride_out("commit offsets", lambda: consumer.commit(offsets), gave_up)
        except CommitFailedError as exc:
            # The group moved on: the new owner finds our manifest and rolls the flush forward.
            self.summary.commit_failures += 1
            log.warning(
                "%s: commit failed after a rebalance (%s); the new owner will finish it",
                self.name,
                exc,
            )
            self._set_state(RUNNING)
            return False
        self._set_state(RUNNING)
        return True

    def ride_out(
        self, what: str, call: Callable[[], _T], gave_up: Callable[[KafkaError, str], Exception]
    ) -> _T:
        """`call()`, retried with backoff while Kafka cannot be reached (state `retrying`), for up to
        `max_outage_s`; after that, or when the stream is asked to stop meanwhile, `gave_up(error,
        why)` is raised. Every Kafka call of the loop goes through it (a poll meets an outage as
        often as a commit). CommitFailedError (the group moved on) is not an outage: it is raised."""
        began = time.monotonic()
        backoff_s, max_backoff_s = COMMIT_RETRY_BACKOFF_S
        while True:
            try:
                return call()
            except CommitFailedError:
                raise
            except KafkaError as exc:
                outage_s = time.monotonic() - began
                stopping = self.stop is not None and self.stop.is_set()
                if stopping or outage_s + backoff_s > self.max_outage_s:
                    why = "the stream was stopped" if stopping else f"after {outage_s:.0f} s of retries"
                    raise gave_up(exc, why) from exc
                self._set_state(RETRYING)
                log.warning(
                    "%s: cannot %s (%s); retrying in %.1f s (broker outage for %.0f s of at most %.0f s)",
                    self.name,
                    what,
                    exc.__class__.__name__,
                    backoff_s,
                    outage_s,
                    self.max_outage_s,
                )
                if self.stop is not None:
                    self.stop.wait(backoff_s)
                else:
                    time.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, max_backoff_s)

    def commit_async(self, plans: list[PartitionPlan]) -> None:
        """Commit from the rebalance listener, where blocking calls are refused; the manifests are
        deleted when the commit lands (unless a newer owner wrote them meanwhile)."""
        if self.consumer is None or not plans:
            return
        offsets = {TopicPartition(p.topic, p.partition): OffsetAndMetadata(p.end + 1, "", -1) for p in plans}
        ranges = {(p.topic, p.partition): (p.start, p.end) for p in plans}

        def done(_offsets: object, response: object) -> None:
            if isinstance(response, BaseException):
                self.summary.commit_failures += 1
                log.warning(
                    "%s: commit on rebalance failed (%s); the new owner will finish it",
                    self.name,
                    response,
                )
                return
            for (topic, partition), (start, end) in ranges.items():
                current = self.manifests.read(topic, partition)
                if current is not None and (current.start, current.end) == (
                    start,
                    end,
                ):  # not a newer owner's
                    self.manifests.delete(topic, partition)

        self.consumer.commit_async(offsets, callback=done)
