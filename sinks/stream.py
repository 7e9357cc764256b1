"""A delivery stream: a kafka-python consumer group that buffers records and delivers Parquet files.

    stream = DeliveryStream(config, settings)
    summary = stream.run(stop_event=event, max_idle_s=5)   # in a thread or a process

The order of a flush, enforced in `_plan_and_write` and `_finish` (see `sinks.manifest` for why it gives exactly-once):

    1. plan the files of every buffered partition (transform, convert, prefix, group)
    2. write one write-ahead manifest per partition
    3. write every file (temp name, fsync, rename, fsync the folder)
    4. commit the offsets after the last record of each partition
    5. delete the manifests

Each polled batch is packed into the buffer (`sinks.records`) and, unless a transform hook rewrites
records first, its format conversion starts at once in the writer thread; step 1 of a flush then
only gathers those conversions. Steps 1-3 of a size/interval flush run in the writer thread while
the consumer keeps polling (Arrow and the Parquet writer release the GIL); steps 4-5 run on the main
thread when they are done, and the next flush waits for the previous one, so offsets are always
committed in order. Nothing converted ahead is committed before its flush: a crash loses only work.

A write error stops the stream before step 4, so nothing is committed and nothing is lost. A broker
outage is ridden out (`sinks.committing`): a poll or the commit of step 4 that cannot reach Kafka is
retried with backoff for up to `max_outage_s` (state `retrying`), while the files stay listed in
the manifest. Before a rebalance takes partitions away, their buffer is flushed
(`on_partitions_revoked`); when partitions are assigned, an unfinished flush found in a manifest is
rolled forward before new records go on (`sinks.recovery`). The consumer, its client settings and
its rebalance listener are in `sinks.consumer`; the plan of step 1 is `sinks.planning`'s.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from core.errors import BrokerUnavailable
from core.settings import Settings
from core.status_board import RETRYING, RUNNING
from core.throttle import Throttle
from sinks import buffering, transform
from sinks.buffering import Buffer
from sinks.committing import DEFAULT_MAX_OUTAGE_S, Committer
from sinks.config import DeliveryStreamConfig
from sinks.consumer import CLOSE_TIMEOUT_MS, RebalanceListener, connect
from sinks.conversion import Conversion
from sinks.manifest import Manifest, ManifestStore
from sinks.metrics import WAITING_FOR_PARTITIONS, SinkSummary
from sinks.ownership import DatasetClaims
from sinks.planning import PartitionPlan, Planner
from sinks.records import RecordColumns
from sinks.recovery import Partition, Recovery
from sinks.switch_interval import switch_interval
from sinks.writer import sync_folders, write_parquet

log = logging.getLogger(__name__)
#: Poll at least this often, so a stop request or an idle interval is seen quickly.
MAX_POLL_WAIT_S = 0.25


class DeliveryStream:
    """One delivery stream (Firehose: a delivery stream with a Kinesis source and an S3 destination)."""

    def __init__(
        self,
        config: DeliveryStreamConfig,
        settings: Settings,
        *,
        handler: transform.Handler | None = None,
        on_progress: Callable[[SinkSummary], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` (monotonic seconds) times the buffering interval and `max_idle_s`; tests pass
        one they move by hand."""
        self.config = config
        self._clock = clock
        self.settings = settings
        self.lake: Path = settings.lake.root
        if handler is None and config.transform:
            handler = transform.load_handler(config.transform)
        self.planner = Planner(config, handler)
        self.buffer = Buffer(config.buffer, clock=clock)
        self.manifests = ManifestStore(self.lake, config.name)
        #: The datasets this stream writes are its own (sinks.ownership): claimed before any write.
        self.claims = DatasetClaims(
            self.lake, config.name, config.consumer_group, dead_letters=config.mode == "errors"
        )
        self.summary = SinkSummary(config.name)
        self.on_progress = on_progress
        #: Unfinished flushes of a crashed run, rolled forward from their manifests.
        self.recovery = Recovery(self.manifests)
        #: Step 4 of a flush, riding out broker outages (polls go through it too).
        self.committer = Committer(config.name, self.manifests, self.summary, self._set_state)
        self._latest_timestamp: dict[Partition, int] = {}
        self._failed = False
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: tuple[Future[list[PartitionPlan]], str] | None = None
        #: Format conversions of the buffered batches, running ahead in the writer thread.
        self._conversions: dict[Partition, list[Future[Conversion]]] = {}
        self._stop: threading.Event | None = None
        self._flush_requested = threading.Event()

    # -- the loop --------------------------------------------------------------------------------

    def run(
        self,
        stop_event: threading.Event | None = None,
        max_idle_s: float | None = None,
        max_records: int | None = None,
        max_outage_s: float = DEFAULT_MAX_OUTAGE_S,
    ) -> SinkSummary:
        """Deliver until `stop_event` is set, no new record arrived for `max_idle_s` (counted from
        the start, and again from each time partitions are assigned after none were: joining the
        group is not idle time; a flush the buffering hints have not called for yet is not waited
        for), or `max_records` were read; then flush what is buffered
        and stop. A broker outage is ridden out for `max_outage_s` (seconds).

        Returns the summary; raises SinkWriteError (nothing committed), BrokerUnavailable, or
        ConfigError when a dataset it would write belongs to another delivery stream (before it
        writes anything there: at the start for the datasets it knows, else before that flush)."""
        self.claim_known_datasets()
        self._stop = stop_event or threading.Event()
        self.committer.stop = self._stop
        self.committer.max_outage_s = max_outage_s
        with switch_interval:
            return self._run(self._stop, max_idle_s, max_records)

    def request_flush(self) -> None:
        """Flush what is buffered after the next poll (at most `MAX_POLL_WAIT_S` away), as the
        buffering interval would, and commit it before polling again. Returns at once; a caller
        that must know the files are durable watches the group's committed offsets (tidelake's test
        stack does, in `sinks.firehose_flush`). Thread-safe."""
        self._flush_requested.set()

    def claim_known_datasets(self) -> None:
        """Claim the datasets this stream knows it will write before it reads anything: its
        `dataset`, or its topics' (a `topic_pattern` stream claims the topics that match once it has
        connected, and later ones before their first flush). ConfigError if another stream owns one."""
        if self.config.dataset or not self.config.topic_pattern:
            for topic in self.config.topics or [""]:
                self.claims.claim(self.config.dataset_of(topic))

    def _run(self, stop: threading.Event, max_idle_s: float | None, max_records: int | None) -> SinkSummary:
        listener = RebalanceListener(self._on_revoked, self._on_assigned)
        consumer = connect(self.config, self.settings.kafka, self.claims, listener)
        self.committer.consumer = consumer
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{self.config.name}")
        clock = self._clock
        last_record = clock()
        was_assigned = False
        progress = Throttle(0.5)

        def unreachable(exc: KafkaError, why: str) -> Exception:
            return BrokerUnavailable(
                f"delivery stream {self.config.name}: Kafka at {self.settings.kafka.bootstrap_servers} cannot be "
                f"reached ({exc.__class__.__name__}: {exc}; gave up: {why}); buffered records are read again "
                "by the next run"
            )

        try:
            while not stop.is_set():
                wait_s = min(self.buffer.seconds_until_due(clock()), MAX_POLL_WAIT_S)
                if max_idle_s is not None:
                    wait_s = max(0.0, min(wait_s, max_idle_s - (clock() - last_record)))
                polled_at = time.monotonic()
                poll = functools.partial(consumer.poll, timeout_ms=int(wait_s * 1000))
                batch = self.committer.ride_out("read records", poll, unreachable)
                if not batch and not consumer.assignment():
                    # no partitions yet: kafka-python's poll may return at once, again and again,
                    # while the group is not joined; wait out the poll's time here instead of spinning
                    stop.wait(max(0.0, wait_s - (time.monotonic() - polled_at)))
                assigned = len(consumer.assignment())
                self._set_partitions(assigned)
                if assigned and not was_assigned:
                    last_record = clock()  # idle time counts from getting partitions, not from joining
                was_assigned = bool(assigned)
                for tp, records in batch.items():
                    self._accept((tp.topic, tp.partition), records)
                now = clock()
                if batch:
                    last_record = now
                for key in self.recovery.settled(consumer):
                    self._finish_recovery(key)
                if self._inflight is not None and self._inflight[0].done():
                    self._complete_inflight()
                reason = self.buffer.due(now, idle=not batch)
                if reason:
                    self._flush(reason, background=True)
                if self._flush_requested.is_set():
                    self._flush_requested.clear()
                    self._flush(buffering.INTERVAL)  # inline: committed before the next poll
                self._update_lag(consumer)
                if self.on_progress and progress.due(now):
                    self.on_progress(self.summary)
                if (
                    max_records is not None
                    and self.summary.records_in >= max_records
                    and not self.recovery.pending
                ):
                    break
                if max_idle_s is not None and now - last_record >= max_idle_s:
                    # what is buffered is flushed below; a flush rolled forward only in part (its
                    # records stopped coming) stays in its manifest for the next run
                    break
            self._flush(buffering.SHUTDOWN)
        except BaseException:
            self._failed = True  # the rebalance listener must not flush a half-done state on close
            raise
        finally:
            if self._inflight is not None:  # written or not, it stays uncommitted: its manifest finishes it
                wait([self._inflight[0]])
                self._inflight = None
            self._writer.shutdown(wait=True)
            self._writer = None
            self.summary.buffered = self.buffer.records + self.recovery.buffered
            self.summary.stopped_monotonic = time.monotonic()
            try:
                consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
            except KafkaError as exc:
                log.warning("closing the consumer of %s: %s", self.config.name, exc)
        return self.summary

    def _accept(self, key: Partition, records: list[ConsumerRecord]) -> None:
        if not records:
            return
        self.summary.records_in += len(records)
        self._latest_timestamp[key] = records[-1].timestamp
        records, roll_forward = self.recovery.accept(key, records)
        if roll_forward:
            self._finish_recovery(key)
        if records:
            self.buffer.add(key[0], key[1], records)
            self._convert_ahead(key)

    def _convert_ahead(self, key: Partition) -> None:
        """Convert the batch just buffered in the writer thread while polling goes on, so that a
        flush is left with grouping and writing (the last flush before a stop waits for less)."""
        if self._writer is None or not self.planner.converts_ahead:
            return
        batch = self.buffer.by_partition[key].values.last_batch()
        future = self._writer.submit(self.planner.convert_batch, key[0], batch)
        self._conversions.setdefault(key, []).append(future)

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        """Kinesis's MillisBehindLatest: 0 when caught up, else age of the last record read."""
        behind = 0
        now_ms = int(time.time() * 1000)
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            try:
                position = consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue
            if high is not None and position is not None and position < high:
                last = self._latest_timestamp.get((tp.topic, tp.partition))
                if last is not None:
                    behind = max(behind, now_ms - last)
        self.summary.millis_behind_latest = behind

    # -- flushing --------------------------------------------------------------------------------

    def _flush(self, reason: str, *, in_listener: bool = False, background: bool = False) -> None:
        """Flush the buffer: steps 1-3 now, or in the writer thread when `background` (so polling
        goes on meanwhile); steps 4-5 once they are done (`_complete_inflight`)."""
        self._complete_inflight(in_listener=in_listener)
        if not self.buffer.records:
            return
        taken = self.buffer.take()
        conversions, self._conversions = self._conversions, {}
        if background and self._writer is not None:
            # queued behind the conversions of its batches, in the same thread: they are done first
            self._inflight = (self._writer.submit(self._plan_and_write, taken, {}, None, conversions), reason)
            return
        self._finish(self._plan_and_write(taken, {}, None, conversions), reason, in_listener=in_listener)

    def _complete_inflight(self, *, in_listener: bool = False) -> None:
        """Wait for the flush in the writer thread, then commit it (a write error propagates: no commit)."""
        if self._inflight is None:
            return
        future, reason = self._inflight
        self._inflight = None
        self._finish(future.result(), reason, in_listener=in_listener)

    def _finish_recovery(self, key: Partition) -> None:
        """Roll forward the flush a crashed run had begun for this partition."""
        self._complete_inflight()
        # this flush converts here, beside nothing: conversions ahead share the dataset's schema
        wait([f for futures in self._conversions.values() for f in futures])
        pending, records = self.recovery.take(key)
        plans = self._plan_and_write({key: records}, {key: pending.files}, pending)
        self._finish(plans, buffering.RECOVERY)
        self.summary.recovered_flushes += 1
        log.info(
            "%s: finished the interrupted flush of %s[%d] (offsets %d..%d)",
            self.config.name,
            *key,
            pending.start,
            pending.end,
        )

    def _plan_and_write(
        self,
        taken: dict[Partition, RecordColumns],
        previous: dict[Partition, list[str]],
        pending: Manifest | None = None,
        conversions: dict[Partition, list[Future[Conversion]]] | None = None,
    ) -> list[PartitionPlan]:
        """Steps 1-3 of a flush; see the module docstring. Runs in the writer thread or inline."""
        for topic, _partition in taken:  # nothing of a dataset another stream owns is written
            self.claims.claim(self.config.dataset_of(topic))
        if pending is not None:
            self.claims.claim(self.config.dataset_of(pending.topic))
        open_prefixes: set[str] = set()
        conversions = conversions or {}
        plans = [
            self.planner.plan(records, open_prefixes, [f.result() for f in conversions.get(key, ())])
            for key, records in taken.items()
            if records
        ]
        if pending is not None:  # a recovery covers the whole range of the manifest, records or not
            if not plans:
                plans = [PartitionPlan(pending.topic, pending.partition, pending.start, pending.end)]
            plans[0].start = min(plans[0].start, pending.start)
            plans[0].end = max(plans[0].end, pending.end)
        for plan in plans:  # 2. manifests (a recovery keeps the files of the first attempt listed)
            files = [f.relative_path for f in plan.files]
            listed = sorted(set(files) | set(previous.get((plan.topic, plan.partition), [])))
            self.manifests.write(Manifest(plan.topic, plan.partition, plan.start, plan.end, listed))
        parquet = self.config.parquet
        folders: set[Path] = set()
        for plan in plans:  # 3. files
            for planned in plan.files:
                path = self.lake / planned.relative_path
                plan.bytes += write_parquet(
                    planned.table,
                    path,
                    engine=parquet.engine,
                    compression=parquet.compression,
                    row_group_records=parquet.row_group_records,
                    sync_folder=False,
                    root=self.lake,  # never through a link inside the lake (sinks.writer)
                )
                folders.add(path.parent)
            written = {f.relative_path for f in plan.files}
            for stale in set(previous.get((plan.topic, plan.partition), [])) - written:
                (self.lake / stale).unlink(missing_ok=True)
        sync_folders(folders)  # the renames are durable before any offset is committed
        return plans

    def _finish(self, plans: list[PartitionPlan], reason: str, *, in_listener: bool = False) -> None:
        """Steps 4-5: commit the offsets, then forget the manifests; count what was delivered."""
        if in_listener:  # blocking calls are refused on kafka-python's IO thread
            self.committer.commit_async(plans)
        elif self.committer.commit(plans):
            for plan in plans:
                self.manifests.delete(plan.topic, plan.partition)
        for plan in plans:
            self.summary.rows_written += plan.rows_written
            self.summary.dropped += plan.dropped
            self.summary.errors.update(plan.errors)
            self.summary.files += len(plan.files)
            self.summary.bytes += plan.bytes
        self.summary.flushes[reason] += 1

    def _set_partitions(self, count: int) -> None:
        self.summary.partitions = count
        if self.summary.state != RETRYING:
            self._set_state(RUNNING if count else WAITING_FOR_PARTITIONS)

    def _set_state(self, state: str) -> None:
        """A change of state is reported at once (a watcher must not mistake an outage for idleness)."""
        if state != self.summary.state:
            self.summary.state = state
            if self.on_progress is not None:
                self.on_progress(self.summary)

    # -- rebalances ------------------------------------------------------------------------------

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._failed:
            return
        self._flush(buffering.REBALANCE, in_listener=True)
        self.recovery.forget(revoked)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.recovery.note_assigned(assigned)
