"""Run one stream app against Kafka: read the source in micro-batches, window, write the results,
exactly once: every checkpoint is one Kafka transaction.

The loop:
1. read a batch per partition (`getmany`, at most one timer tick of waiting) and apply it;
2. on every tick, close the windows the watermark or idleness allows (rows go to the outbox);
3. checkpoint (`commit`), at most every `checkpoint_interval_s` while busy, at once when idle; in
   the order it is enforced:
   a. begin a transaction of the app's transactional producer;
   b. send the outbox (final rows, late events, bad records) and wait for the acks;     "after-send"
   c. add the source offsets to the transaction, their metadata naming the checkpoint's
      generation G (`send_offsets_to_transaction`, group `tidelake-stream-<app>`);    "after-offsets"
   d. the snapshot of the state this transaction leaves behind, with an empty outbox, is durable
      as `snapshot-G.pending` (written beside b and c, awaited here);                 "after-snapshot"
   e. commit the transaction: rows, offsets and G become visible together;           "after-commit"
   f. rename the snapshot `snapshot-G.pickle` and drop older ones.                  "after-confirm"

On start the producer's InitProducerId (same transactional id: app, source and partitions) fences a
previous worker and finishes its open transaction (aborted, or committed if it got that far); then
the generation Kafka holds as committed picks the snapshot (stream_apps/checkpoint.py `choose`). A
crash anywhere before e aborts the rows, the offsets and G together and the restart resumes from G-1,
whose snapshot is still there; a crash after e resumes from G. Readers with `read_committed` (the
delivery streams, the tests) therefore see each final row exactly once. The quoted names are the
crash drill's points (`WorkerOptions.crash_at`).

Uses aiokafka, the client under Faust, directly: Faust's own windows close by wall clock, miss
partitions and forget windows on restart (notes/faust-and-kafka-python.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zlib import crc32

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError as KafkaPythonError

from core.admin import admin_client, create_topics, describe_topics
from core.errors import BrokerUnavailable, ConfigError
from core.status_board import RETRYING, RUNNING, STOPPED
from core.topics import LATE_EVENTS, TopicSpec, dlq_topic, stream_app_group
from stream_apps.anomaly import make_row_hook
from stream_apps.checkpoint import StateFolder
from stream_apps.durations import format_time_us
from stream_apps.engine import WindowEngine
from stream_apps.outbox import Outbox
from stream_apps.spec import AppSpec
from stream_apps.watermarks import NEVER

log = logging.getLogger(__name__)

#: A transaction a crashed worker left open blocks `read_committed` readers until the restarted
#: worker aborts it, or until this timeout; a checkpoint's transaction lasts milliseconds.
TRANSACTION_TIMEOUT_MS = 30_000

#: The environment variable of `WorkerOptions.crash_at`.
CRASH_AT_ENV = "TIDELAKE_STREAM_CRASH_AT"
#: The named moments of a checkpoint where the crash drill can kill the worker, in order.
CRASH_POINTS = ("after-send", "after-offsets", "after-snapshot", "after-commit", "after-confirm")
#: The commit metadata of a checkpoint's source offsets: this prefix, then its generation.
GENERATION_PREFIX = "tidelake-checkpoint "


def transactional_id(spec: AppSpec, partitions: Sequence[int]) -> str:
    """Stable per app and partition set, so a restarted worker fences the one it replaces."""
    return f"{stream_app_group(spec.name)}:{spec.source}:{','.join(map(str, sorted(partitions)))}"


async def stop_clients(*clients: AIOKafkaConsumer | AIOKafkaProducer, owner: str) -> None:
    """Stop every client, even when one fails to stop, so a broker outage ends in the
    BrokerUnavailable that the caller retries rather than in an error of the cleanup.

    aiokafka's consumer.stop() can raise CancelledError that belongs to its own fetch tasks, which
    it cancels and then awaits (aio-libs/aiokafka#647; seen when the broker went away mid-fetch):
    that is not a cancellation of ours, so it is logged and ignored. A real cancellation of the
    calling task (`Task.cancelling()`) still propagates."""
    for client in clients:
        try:
            await client.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("%s: %s.stop() ended in its own tasks' CancelledError; ignored", owner,
                        type(client).__name__)  # fmt: skip
        except KafkaError as exc:
            log.warning("%s: %s.stop() failed (%s); ignored", owner, type(client).__name__, exc)


@dataclass
class WorkerOptions:
    """How one worker runs: where its state lives and how often it ticks and checkpoints."""

    bootstrap_servers: str
    state_dir: Path
    tick_s: float = 1.0
    checkpoint_interval_s: float = 1.0
    max_batch: int = 20_000
    reset: bool = False
    #: Stop once every partition has been read to this many records in total (benchmarks, tests).
    stop_after_events: int | None = None
    #: How long Kafka may stay unreachable before the app gives up (it resumes from its snapshot).
    max_outage_s: float = 120.0
    #: A checkpoint's transaction that stays open longer is aborted by Kafka's transaction
    #: coordinator (`transaction.timeout.ms`); see `StreamWorker.commit`.
    transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS
    #: Crash drill (tests): `POINT` or `POINT:N` kills the worker with SIGKILL the N-th time (default
    #: 1st) a checkpoint with rows reaches POINT (one of CRASH_POINTS). From $TIDELAKE_STREAM_CRASH_AT.
    crash_at: str | None = field(default_factory=lambda: os.environ.get(CRASH_AT_ENV) or None)


@dataclass
class Progress:
    """What `tidelake stream run` shows while running and prints at the end."""

    app: str
    events_in: int
    windowed: int
    filtered: int
    late: int
    errors: int
    windows_open: int
    windows_closed: int
    rows_out: int
    watermark: str
    elapsed_s: float
    #: Result rows, late events and errors read but not yet acknowledged by Kafka.
    rows_pending: int = 0
    #: "running", or "retrying" while Kafka is unreachable (the app resumes from its last snapshot).
    state: str = RUNNING

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StreamWorker:
    """One worker of one app; owns every partition of the source topic."""

    def __init__(self, spec: AppSpec, options: WorkerOptions,
                 on_progress: Callable[[Progress], None] | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.options = options
        self.on_progress = on_progress
        self.state = StateFolder(options.state_dir, spec.name)
        self.engine: WindowEngine | None = None
        self.hook: Any = None
        self.started = time.monotonic()
        self._stop = asyncio.Event()
        self._partitions: dict[str, list[int]] = {}
        self._state = RUNNING
        self._crash = _parse_crash_at(options.crash_at)
        self._generation = 1  # of the next checkpoint; set from the state folder and Kafka on start
        self._committed_mark: tuple[Any, ...] = ()

    def _reached(self, point: str) -> None:
        """The crash drill: die here, as `kill -9` would, if this is the moment it names."""
        if self._crash is not None and self._crash[0] == point:
            self._crash[1] -= 1
            if self._crash[1] == 0:
                log.warning("crash drill: SIGKILL at %s", point)
                os.kill(os.getpid(), signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()

    def progress(self) -> Progress:
        engine = self.engine
        if engine is None:
            msg = f"stream app {self.spec.name} has not started"
            raise RuntimeError(msg)
        c = engine.counters
        mark = engine.closed_through
        return Progress(
            self.spec.name, c.events_in, c.windowed, c.filtered, c.late, c.errors, engine.open_windows(),
            c.windows_closed, c.rows_out, "-" if mark <= NEVER else format_time_us(mark),
            round(time.monotonic() - self.started, 3), len(engine.outbox), self._state,
        )  # fmt: skip

    def _prepare_topics(self) -> list[int]:
        servers = self.options.bootstrap_servers
        found = describe_topics(servers, [self.spec.source])
        if not found:
            msg = (
                f"source topic {self.spec.source!r} does not exist at {servers}; create it "
                f"(`tidelake topics create {self.spec.source} --partitions 4`) or replay a file into it"
            )
            raise ConfigError(msg)
        count = found[0].partitions
        create_topics(
            servers,
            [
                TopicSpec(self.spec.sink_topic, count),
                TopicSpec(LATE_EVENTS, count),
                TopicSpec(dlq_topic(self.spec.source), 1),
            ],
        )
        return list(range(count))

    async def run(self) -> Progress:
        """Run until stopped. A broker outage (BrokerUnavailable) restarts the run from the last
        snapshot, as a crash would, for up to `max_outage_s`; only a longer outage stops the app."""
        outage_began: float | None = None
        delay_s = 0.5
        reset_pending = self.options.reset
        while True:
            try:
                partitions = self._prepare_topics()
                self.state.lock()
                if reset_pending:  # under the lock, and once: a retry resumes from the new snapshot
                    self.state.reset()
                    reset_pending = False
                try:
                    return await self._run(partitions)
                finally:
                    self.state.unlock()
            except BrokerUnavailable as exc:
                now = time.monotonic()
                outage_began = outage_began if outage_began is not None else now
                if self._stop.is_set() or now - outage_began > self.options.max_outage_s:
                    raise
                log.warning("%s; retrying in %.1f s from the last snapshot", exc, delay_s)
                self._state = RETRYING
                if self.on_progress is not None and self.engine is not None:
                    self.on_progress(self.progress())  # watchers must not take the pause for a finish
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay_s)
                delay_s = min(delay_s * 2, 5.0)

    async def _restored_engine(self, partitions: list[int]) -> tuple[WindowEngine, Any]:
        """A fresh engine (and anomaly hook) holding the state of the checkpoint Kafka holds as
        committed. Call only once the transactional producer has started: its InitProducerId has
        finished the previous worker's transaction, so the committed generation is final."""
        hook = self.hook = make_row_hook(self.spec)
        engine = self.engine = WindowEngine(self.spec, partitions, time.monotonic(), row_hook=hook)
        committed = await asyncio.to_thread(self._committed_generation, partitions)
        saved, self._generation = self.state.load(self.spec.fingerprint, committed)
        if saved is not None:
            engine.restore(saved)
            if hook is not None:
                hook.restore(saved.get("hook"))
        self._committed_mark = self._mark(engine)
        self._state = RUNNING  # connected (after a retry too)
        return engine, hook

    def _committed_generation(self, partitions: list[int]) -> int | None:
        """The generation in the commit metadata of the app's group on the source partitions."""
        group = stream_app_group(self.spec.name)
        tps = [KafkaTopicPartition(self.spec.source, p) for p in partitions]
        deadline = time.monotonic() + 30.0
        while True:
            try:
                with admin_client(self.options.bootstrap_servers) as client:
                    committed = client.list_group_offsets({group: tps}).get(group, {})
                break
            except KafkaPythonError as exc:  # e.g. no group coordinator yet on a fresh broker
                if not exc.retriable or time.monotonic() > deadline:
                    msg = f"stream app {self.spec.name}: cannot read the committed offsets of {group}: {exc}"
                    raise BrokerUnavailable(msg) from exc
                time.sleep(0.2)
        generations = {
            int(meta.metadata.removeprefix(GENERATION_PREFIX))
            for meta in committed.values()
            if meta.offset >= 0 and meta.metadata and meta.metadata.startswith(GENERATION_PREFIX)
        }
        return max(generations) if generations else None

    @staticmethod
    def _mark(engine: WindowEngine) -> tuple[Any, ...]:
        """What a checkpoint without rows would change: nothing to commit while it stays the same."""
        return tuple(sorted(engine.offsets.items())), engine.closed_through

    def _producer(self, partitions: list[int]) -> AIOKafkaProducer:
        """The app's transactional producer (idempotent, acks=all)."""
        return AIOKafkaProducer(
            bootstrap_servers=self.options.bootstrap_servers,
            client_id=f"tidelake-stream-{self.spec.name}",
            transactional_id=transactional_id(self.spec, partitions),
            transaction_timeout_ms=self.options.transaction_timeout_ms,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
        )

    async def _start_producer(self, producer: AIOKafkaProducer) -> None:
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            msg = (
                f"stream app {self.spec.name}: cannot reach Kafka at {self.options.bootstrap_servers}: {exc}"
            )
            raise BrokerUnavailable(msg) from exc

    async def _run(self, partitions: list[int]) -> Progress:
        spec, options = self.spec, self.options
        producer = self._producer(partitions)
        await self._start_producer(producer)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=options.bootstrap_servers,
            client_id=f"tidelake-stream-{spec.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",  # the source may be another app's transactional output
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        try:
            engine, hook = await self._restored_engine(partitions)
            try:
                await consumer.start()
            except KafkaError as exc:
                msg = f"stream app {spec.name}: cannot reach Kafka at {options.bootstrap_servers}: {exc}"
                raise BrokerUnavailable(msg) from exc
            tps = [TopicPartition(spec.source, p) for p in partitions]
            consumer.assign(tps)
            await self._check_snapshot_fits(consumer, engine, tps)
            for tp in tps:
                if tp.partition in engine.offsets:
                    consumer.seek(tp, engine.offsets[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            if len(engine.outbox):  # only a snapshot of tidelake before transactions has one
                await self.commit(producer, engine, hook)
            await self._loop(consumer, producer, engine, tps)
            await self.commit(producer, engine, hook)
        finally:
            await stop_clients(consumer, producer, owner=f"stream app {spec.name}")
        self._state = STOPPED
        return self.progress()

    async def _check_snapshot_fits(self, consumer: AIOKafkaConsumer, engine: WindowEngine,
                                   tps: list[TopicPartition]) -> None:  # fmt: skip
        """A snapshot that has read past a partition's end belongs to an older topic of the same name
        (deleted and created again): resuming from it would call every new event late."""
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            saved = engine.offsets.get(tp.partition)
            if saved is not None and saved > ends[tp]:
                msg = (
                    f"stream app {self.spec.name}: its saved state ({self.state.path}) has read "
                    f"{tp.topic}[{tp.partition}] up to offset {saved}, but the topic now ends at {ends[tp]}: "
                    "the topic was created again. Run with --reset to start over from the new topic."
                )
                raise ConfigError(msg)

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, engine: WindowEngine,
                    tps: list[TopicPartition]) -> None:  # fmt: skip
        options = self.options
        tick_ms = int(options.tick_s * 1000)
        last_checkpoint = last_progress = time.monotonic()
        dirty = False
        hook = self.hook
        self._state = RUNNING  # connected, and a crash's unsent rows are out
        while not self._stop.is_set():
            batches = await consumer.getmany(timeout_ms=tick_ms, max_records=options.max_batch)
            now = time.monotonic()
            for tp, messages in batches.items():
                engine.process(tp.partition, messages, now)
                dirty = True
            engine.note_waiting(await _partitions_behind(consumer, tps), now)
            engine.advance(now)
            # While busy, rows wait for the next checkpoint (at most checkpoint_interval_s); when a
            # tick brought nothing new (idle close), they are written at once.
            due = now - last_checkpoint >= options.checkpoint_interval_s
            if (len(engine.outbox) and (due or not batches)) or (dirty and due):
                await self.commit(producer, engine, hook)
                last_checkpoint, dirty = now, False
            if self.on_progress is not None and now - last_progress >= 1.0:
                self.on_progress(self.progress())
                last_progress = now
            if (
                options.stop_after_events is not None
                and engine.counters.events_in >= options.stop_after_events
            ):
                break

    async def commit(self, producer: AIOKafkaProducer, engine: WindowEngine, hook: Any) -> None:
        """One checkpoint, one transaction: rows + source offsets + generation, and the snapshot of the
        state they leave behind made durable before the commit (the order: module docstring).

        Kafka answers ProducerFenced both when another worker took over the transactional id and when
        the coordinator aborted this transaction because it outlived `transaction_timeout_ms` (a
        broker restart under load stalls a checkpoint that long; Kafka's KIP-588 tells the two apart
        only on newer protocol versions). A transaction open that long was aborted: nothing of it is
        visible to read_committed readers, so the worker restarts from its last committed snapshot
        (BrokerUnavailable, retried) instead of stopping. A shorter one was fenced by another worker:
        ConfigError, the app stops."""
        outbox = engine.outbox
        mark = self._mark(engine)
        if not engine.offsets or (not len(outbox) and mark == self._committed_mark):
            return  # nothing read yet, or nothing new since the last commit
        drill = self._reached if len(outbox) else _no_drill
        generation = self._generation
        state = self._snapshot(engine, hook)
        state["outbox"] = Outbox()  # the state once this transaction has committed
        metadata = f"{GENERATION_PREFIX}{generation}"
        offsets = {TopicPartition(self.spec.source, p): (o, metadata) for p, o in engine.offsets.items()}
        began = time.monotonic()
        try:
            await producer.begin_transaction()
            saving = asyncio.ensure_future(asyncio.to_thread(self.state.save_pending, generation, state))
            try:
                await self._send(producer, outbox)
                drill("after-send")
                await producer.send_offsets_to_transaction(offsets, stream_app_group(self.spec.name))
                drill("after-offsets")
            finally:
                await saving
            drill("after-snapshot")
            await producer.commit_transaction()
        except ProducerFenced as exc:
            open_ms = (time.monotonic() - began) * 1000
            if open_ms >= self.options.transaction_timeout_ms:
                msg = (
                    f"stream app {self.spec.name}: checkpoint {generation} stayed open {open_ms / 1000:.1f} s, "
                    f"past the transaction timeout ({self.options.transaction_timeout_ms / 1000:g} s), and "
                    "Kafka aborted it; a restart redoes it from the last snapshot"
                )
                raise BrokerUnavailable(msg) from exc
            msg = (
                f"stream app {self.spec.name}: another worker of this app took over its transactional id "
                f"{transactional_id(self.spec, engine.partitions)!r}; this one stops (run one worker per app)"
            )
            raise ConfigError(msg) from exc
        except KafkaError as exc:
            msg = f"stream app {self.spec.name}: checkpoint {generation} failed: {exc}; a restart redoes it"
            raise BrokerUnavailable(msg) from exc
        outbox.clear()
        self._generation = generation + 1
        self._committed_mark = mark
        drill("after-commit")
        await asyncio.to_thread(self.state.confirm, generation)
        drill("after-confirm")

    @staticmethod
    def _snapshot(engine: WindowEngine, hook: Any) -> dict[str, Any]:
        state = engine.snapshot()
        if hook is not None:
            state["hook"] = hook.state()
        return state

    async def _send(self, producer: AIOKafkaProducer, outbox: Outbox) -> None:
        """Send the outbox and wait for the acks (inside the checkpoint's transaction)."""
        spec = self.spec
        futures = await self._send_batches(producer, spec.sink_topic, outbox.rows)
        futures += await self._send_batches(producer, LATE_EVENTS, outbox.late)
        futures += [
            await producer.send(dlq_topic(spec.source), value, key=key, headers=headers)
            for key, value, headers in outbox.errors
        ]
        await asyncio.gather(*futures)

    async def _send_batches(self, producer: AIOKafkaProducer, topic: str,
                            messages: Sequence[tuple[bytes | None, bytes]]) -> list[Any]:  # fmt: skip
        """Send many messages as whole record batches (one per partition); far cheaper than one
        `send` per row. Partition = crc32 of the key: the same row key always lands in the same
        partition, so the last copy of a row is the last one a consumer reads."""
        if not messages:
            return []
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        count = len(partitions)
        batches: dict[int, Any] = {}
        futures = []
        for key, value in messages:
            partition = partitions[crc32(key) % count] if key is not None else partitions[0]
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures


async def _partitions_behind(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> list[int]:
    """The partitions whose next record to read is before their end as of the last fetch (the last
    stable offset: this consumer reads committed records only). Control records (transaction
    markers) do not count: the position moves past them."""
    behind = []
    for tp in tps:
        end = consumer.last_stable_offset(tp)
        if end is None or end < 0:
            end = consumer.highwater(tp)
        if end is not None and await consumer.position(tp) < end:
            behind.append(tp.partition)
    return behind


def _no_drill(point: str) -> None:
    """Checkpoints without rows are not drill moments."""


def _parse_crash_at(text: str | None) -> list[Any] | None:
    """`POINT[:N]` -> [POINT, N]; a mistyped point is refused rather than never firing."""
    if not text:
        return None
    point, _, count = text.partition(":")
    if point not in CRASH_POINTS or (count and not count.isdigit()):
        msg = f"{CRASH_AT_ENV}={text!r}: expected one of {', '.join(CRASH_POINTS)}, optionally with :N"
        raise ConfigError(msg)
    return [point, int(count or 1)]
