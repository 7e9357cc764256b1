"""Run one stream app against Kafka: read the source in micro-batches, window, write the results.

The loop, in the order it is enforced (each step only after the previous one is durable):
1. read a batch per partition (`getmany`, at most one timer tick of waiting) and apply it;
2. on every tick, close the windows the watermark or idleness allows;
3. checkpoint: write the engine snapshot (offsets + state + outbox) atomically to the state folder;
4. send the outbox (final rows, late events, bad records) and wait for the broker's acks;
5. commit the offsets to the consumer group (for lag monitoring; the snapshot is authoritative).

3b. after the acks, snapshot again with the outbox emptied.

A crash before 3 replays from the previous snapshot and recomputes the same rows; a crash between 3
and 3b resends the outbox on restart. So every final row is written at least once and every copy
of it carries the same values: a consumer keeping the last row per (key, window_start) sees exactly
one final row per window (and the output key is `<key>|<window_start>`, so compaction agrees).
Without a crash (including stop and restart) each row is written once.

Uses aiokafka, the client under Faust, directly: Faust's own windows close by wall clock, miss
partitions and forget windows on restart (notes/faust-and-kafka-python.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zlib import crc32

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from core.admin import create_topics, describe_topics
from core.errors import BrokerUnavailable, ConfigError
from core.status_board import RETRYING, RUNNING
from core.topics import LATE_EVENTS, TopicSpec, dlq_topic, stream_app_group
from stream_apps.anomaly import make_row_hook
from stream_apps.checkpoint import StateFolder
from stream_apps.durations import format_time_us
from stream_apps.engine import NEVER, WindowEngine
from stream_apps.spec import AppSpec

log = logging.getLogger(__name__)


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

    def _restored_engine(self, partitions: list[int]) -> tuple[WindowEngine, Any]:
        """A fresh engine (and anomaly hook) holding the last snapshot's state, if there is one."""
        hook = self.hook = make_row_hook(self.spec)
        engine = self.engine = WindowEngine(self.spec, partitions, time.monotonic(), row_hook=hook)
        saved = self.state.load(self.spec.fingerprint)
        if saved is not None:
            engine.restore(saved)
            if hook is not None:
                hook.restore(saved.get("hook"))
        return engine, hook

    async def _run(self, partitions: list[int]) -> Progress:
        spec, options = self.spec, self.options
        engine, hook = self._restored_engine(partitions)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=options.bootstrap_servers,
            group_id=stream_app_group(spec.name),
            client_id=f"tidelake-stream-{spec.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=options.bootstrap_servers,
            client_id=f"tidelake-stream-{spec.name}",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
        )
        try:
            await consumer.start()
            await producer.start()
        except KafkaError as exc:
            await consumer.stop()
            await producer.stop()
            msg = f"stream app {spec.name}: cannot reach Kafka at {options.bootstrap_servers}: {exc}"
            raise BrokerUnavailable(msg) from exc
        try:
            tps = [TopicPartition(spec.source, p) for p in partitions]
            consumer.assign(tps)
            await self._check_snapshot_fits(consumer, engine, tps)
            for tp in tps:
                if tp.partition in engine.offsets:
                    consumer.seek(tp, engine.offsets[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            if len(engine.outbox):
                await self._send(producer, engine)  # rows a crash left unsent (or unacknowledged)
                await asyncio.to_thread(self.state.save, self._snapshot(engine, hook))
            await self._loop(consumer, producer, engine, tps)
            await self._checkpoint(consumer, producer, engine, hook)
        finally:
            await consumer.stop()
            await producer.stop()
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
            engine.advance(now)
            # While busy, rows wait for the next checkpoint (at most checkpoint_interval_s); when a
            # tick brought nothing new (idle close), they are written at once.
            due = now - last_checkpoint >= options.checkpoint_interval_s
            if (len(engine.outbox) and (due or not batches)) or (dirty and due):
                await self._checkpoint(consumer, producer, engine, hook)
                last_checkpoint, dirty = now, False
            if self.on_progress is not None and now - last_progress >= 1.0:
                self.on_progress(self.progress())
                last_progress = now
            if (
                options.stop_after_events is not None
                and engine.counters.events_in >= options.stop_after_events
            ):
                break

    async def _checkpoint(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, engine: WindowEngine,
                          hook: Any) -> None:  # fmt: skip
        await asyncio.to_thread(self.state.save, self._snapshot(engine, hook))
        if len(engine.outbox):
            await self._send(producer, engine)
            # the outbox is delivered: record that, so a clean restart does not send it again
            await asyncio.to_thread(self.state.save, self._snapshot(engine, hook))
        offsets = {TopicPartition(self.spec.source, p): o for p, o in engine.offsets.items()}
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # informational only: the snapshot holds the real positions
                log.warning("could not commit offsets of %s to its group: %s", self.spec.name, exc)

    @staticmethod
    def _snapshot(engine: WindowEngine, hook: Any) -> dict[str, Any]:
        state = engine.snapshot()
        if hook is not None:
            state["hook"] = hook.state()
        return state

    async def _send(self, producer: AIOKafkaProducer, engine: WindowEngine) -> None:
        outbox = engine.outbox
        spec = self.spec
        futures = await self._send_batches(producer, spec.sink_topic, outbox.rows)
        futures += await self._send_batches(producer, LATE_EVENTS, outbox.late)
        futures += [
            await producer.send(dlq_topic(spec.source), value, key=key, headers=headers)
            for key, value, headers in outbox.errors
        ]
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            msg = f"stream app {spec.name}: writing results to Kafka failed: {exc}; restart resends them"
            raise BrokerUnavailable(msg) from exc
        outbox.clear()

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
