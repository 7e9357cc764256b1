"""tidelake's windows inside a `faust.App`: `FaustWindows(app, spec, state_dir=...)` registers one
agent, one timer, one start-up task and two signal handlers on the app, so the app's own agents run
in the same worker. `tidelake stream run --runtime faust` (`FaustWorker`) hosts its app this way too.

What it registers on `app`:
- a task that takes the state folder's lock, starts the app's transactional producer (an aiokafka
  producer of its own, beside Faust's) and restores the engine from the checkpoint Kafka holds as
  committed (`StreamWorker._restored_engine`);
- an agent `tidelake-windows-<app>` on the spec's source topic, declared `acks=False` with a raw
  schema (`raw_schema`: events carry the records' bytes, the engine decodes them), iterating
  `stream.events()` and feeding micro-batches (`micro_batches`: whatever is queued, at most
  `max_batch` records), per partition, to the window engine (stream_apps/engine.py);
- a timer every `tick_s` that closes windows by watermark or idle timeout and checkpoints;
- `on_partitions_assigned` (a new assignment is positioned again, and start-up is not idle time)
  and `on_before_shutdown` (the last checkpoint, then the producer stops and the lock is released).

Offsets, and the order that makes them safe. The engine's source offsets are committed like any
Kafka consumer's, to the consumer group `tidelake-stream-<app>` (`core.topics.stream_app_group`,
the group the aiokafka runtime commits to as well), so `tidelake status` shows their lag in records
and ms behind latest, and the demo drains on them. Each checkpoint (`StreamWorker.commit`) is one
Kafka transaction, in this order:
  1. begin the transaction;
  2. send the outbox (final rows, late events, bad records) and wait for the acks;
  3. add the source offsets the engine has applied, with the checkpoint's generation G as their
     commit metadata (`send_offsets_to_transaction` to `tidelake-stream-<app>`);
  4. the snapshot of the state this transaction leaves behind is durable as `snapshot-G.pending`
     (temp file, fsync, rename, fsync the folder): written beside 2 and 3, awaited before 5;
  5. commit the transaction: rows, offsets and G become visible together;
  6. rename the snapshot `snapshot-G.pickle` and drop older ones.
So the committed offsets are never ahead of a durable snapshot: they only become visible at 5, after
G's snapshot is on disk at 4, and they are exactly the offsets that snapshot has applied. After a
`kill -9` anywhere before 5, Kafka aborts the rows and the offsets together and the restart resumes
from G-1's snapshot and offsets; anywhere after 5, from G's. Either way each source record is in
the state once (no loss, no double count) and each final row is written once for `read_committed`
readers. Faust itself never commits the source: an `acks=False` topic is never in its commit set.

Where reading starts. On the first batch of each partition after an assignment the agent positions
the consumer at the snapshot's next offset (or the beginning of the partition without a snapshot,
as the aiokafka runtime does), whatever the app's own group holds or `consumer_auto_offset_reset`
says, and drops records below it; later batches pass each unread offset once (`unread`). A
partition that delivers nothing because its consumer sits past that point (the group committed
further on, `reset`) is moved back by the timer before its first batch. When the
app's id is `tidelake-stream-<app>` (as `FaustWorker` names it), Faust's own group is the one the
checkpoints commit to, so Faust already starts at the snapshot's offsets.

Limits: one worker per app (the state folder's lock and the transactional id keep a second one
out); every partition of the source is assigned to that worker. The app's own agents should not
read the spec's source topic: positioning it would move their reading too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError as KafkaPythonError

from core.admin import admin_client
from core.errors import BrokerUnavailable, ConfigError
from stream_apps.catalog import resolve_spec
from stream_apps.spec import AppSpec
from stream_apps.worker import Progress, StreamWorker, WorkerOptions, stop_clients

log = logging.getLogger(__name__)


class FaustWindows:
    """One spec's windows hosted in a `faust.App` (module docstring: what is registered, the commit
    order, where reading starts).

    `app`: a `faust.App` not started yet. `spec`: an `AppSpec`, a spec file (TOML) or a shipped
    app's name (`stream_apps.resolve_spec`). `state_dir`: the folder of the app's snapshots
    (`<state_dir>/<spec name>/`). `bootstrap_servers` ("host:port[,host:port]"): by default the
    app's `broker` setting. `tick_s`, `checkpoint_interval_s` (seconds) and `max_batch` (records)
    as in `WorkerOptions`; `reset` starts the windows over from the beginning of the source.

    Errors: ConfigError at start (source topic missing, state folder locked or written by another
    spec); BrokerUnavailable when Kafka fails. Either crashes the app (`app.crash`) and is kept in
    `failure`.
    """

    def __init__(self, app: Any, spec: AppSpec | str | Path, *, state_dir: str | Path,
                 bootstrap_servers: str | None = None, tick_s: float = 1.0,
                 checkpoint_interval_s: float = 1.0, max_batch: int = 20_000, reset: bool = False,
                 on_progress: Callable[[Progress], None] | None = None) -> None:  # fmt: skip
        if not isinstance(spec, AppSpec):
            spec = resolve_spec(str(spec))
        options = WorkerOptions(
            bootstrap_servers or bootstrap_of(app), Path(state_dir), tick_s=tick_s,
            checkpoint_interval_s=checkpoint_interval_s, max_batch=max_batch, reset=reset,
        )  # fmt: skip
        self._bind(app, StreamWorker(spec, options, on_progress), partitions=None)

    @classmethod
    def for_worker(cls, app: Any, worker: StreamWorker, partitions: list[int]) -> FaustWindows:
        """The host of a worker whose `run()` has already made the topics and taken the state
        folder's lock (`FaustWorker`): it neither takes nor releases them."""
        host = cls.__new__(cls)
        host._bind(app, worker, partitions)
        return host

    def _bind(self, app: Any, worker: StreamWorker, partitions: list[int] | None) -> None:
        self.app = app
        self.worker = worker
        self.spec = worker.spec
        #: The first error of the start task, the agent, the timer or the last checkpoint.
        self.failure: BaseException | None = None
        #: Set when the windows have stopped: a failure, or the app's shutdown.
        self.halted = asyncio.Event()
        self._owns_state = partitions is None
        self._partitions = partitions
        self._producer: AIOKafkaProducer | None = None
        #: Set once the windows have restored their state: `progress()` works from then on.
        self.ready = asyncio.Event()
        self._closing = False
        self._lock = asyncio.Lock()
        self._positioned: set[int] = set()
        #: Partitions moved back by the timer before their first batch (`_nudge`), once per assignment.
        self._nudged: set[int] = set()
        #: Each partition's first offset at start: where a partition without a snapshot starts.
        self._earliest: dict[int, int] = {}
        #: Set once the source's partitions are assigned: before that no partition is idle.
        self._assigned = asyncio.Event()
        self._last_checkpoint = self._last_progress = time.monotonic()
        self._register()

    # -- what the app runs ---------------------------------------------------------------------

    def _register(self) -> None:
        app, spec, options = self.app, self.spec, self.worker.options
        # Raw: the engine decodes (and dead-letters) each record itself (`raw_schema`).
        source = app.topic(spec.source, acks=False, schema=raw_schema()())  # acks: see the docstring

        async def windows(stream: Any) -> None:
            await self.ready.wait()
            queued = stream.channel.queue  # the queue the conductor delivers this stream's events to
            async for messages in micro_batches(stream.events(), queued.empty, options.max_batch):
                await self._guard(self._apply(messages))

        async def close_windows() -> None:
            await self._guard(self._tick())

        async def start() -> None:
            await self._guard(self._start())

        app.agent(source, name=f"tidelake-windows-{spec.name}", concurrency=1)(windows)
        app.timer(options.tick_s, name=f"tidelake-windows-{spec.name}-timer")(close_windows)
        app.task(start)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_before_shutdown.connect(self._on_shutdown)

    async def _guard(self, work: Any) -> None:
        """Run `work`; a failure stops the windows (and the app, when they own their state)."""
        try:
            await work
        except Exception as exc:  # inside Faust a failure would only be logged
            await self._fail(exc)

    async def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            log.error("stream app %s (faust): %s: %s", self.spec.name, type(exc).__name__, exc)
        self.halted.set()
        if self._owns_state:
            await self.app.crash(exc)

    async def _start(self) -> None:
        worker = self.worker
        if self._partitions is None:
            self._partitions = await asyncio.to_thread(worker._prepare_topics)
            worker.state.lock()
            if worker.options.reset:
                worker.state.reset()
        producer = worker._producer(self._partitions)
        await worker._start_producer(producer)
        self._producer = producer
        await worker._restored_engine(self._partitions)
        self._earliest = await asyncio.to_thread(self._earliest_offsets, self._partitions)
        self.ready.set()

    def _earliest_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Asked once at start, off the event loop: a Faust consumer asks partition by partition."""
        specs = {TopicPartition(self.spec.source, p): OffsetSpec.EARLIEST for p in partitions}
        try:
            with admin_client(self.worker.options.bootstrap_servers) as client:
                found = client.list_partition_offsets(specs)
        except KafkaPythonError as exc:
            msg = f"stream app {self.spec.name}: cannot read where {self.spec.source} begins: {exc}"
            raise BrokerUnavailable(msg) from exc
        return {tp.partition: info.offset for tp, info in found.items()}

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        (assigned,) = args
        now = time.monotonic()
        engine = self.worker.engine
        for tp in assigned:
            if tp.topic == self.spec.source:
                self._positioned.discard(tp.partition)  # the new owner positions it again
                self._nudged.discard(tp.partition)
                if engine is not None:
                    engine.last_seen_s[tp.partition] = now  # start-up time does not count as idle
                self._assigned.set()

    async def _apply(self, batch: list[Any]) -> None:
        """Feed a micro-batch of Faust messages to the engine, partition by partition."""
        worker, engine = self.worker, self.worker.engine
        if engine is None:
            return
        by_partition: dict[int, list[Any]] = {}
        for message in batch:
            by_partition.setdefault(message.partition, []).append(message)
        now = time.monotonic()
        async with self._lock:
            if self._stopped():
                return  # after the last checkpoint: a restart reads these again
            for partition, messages in by_partition.items():
                if partition not in self._positioned:
                    messages = await self._position(partition, messages)
                    self._positioned.add(partition)
                # Only records past what the engine has read, each once: records fetched before a
                # seek took effect arrive again after it, even twice within one batch.
                messages = unread(messages, engine.offsets.get(partition, 0))
                if messages:
                    engine.process(partition, messages, now)
            limit = worker.options.stop_after_events
            if limit is not None and engine.counters.events_in >= limit:
                worker.stop()

    async def _position(self, partition: int, messages: list[Any]) -> list[Any]:
        """Seek the partition to where the engine resumes: the snapshot's next offset, else the
        beginning. Records before that point are dropped; a batch that starts after it (the app's
        group or offset reset put the consumer further on) is dropped whole and read again in order."""
        import faust  # the app is running: Faust is imported already

        tp = faust.types.TP(self.spec.source, partition)
        target = self._target(partition)
        first = messages[0].offset
        if first != target:
            await self._seek(tp, target)
        return [] if first > target else messages

    async def _seek(self, tp: Any, offset: int) -> None:
        """Move `tp` to `offset` on the consumer's own thread. Faust runs its aiokafka consumer in a
        thread of its own, and `app.consumer.seek` calls aiokafka's `seek` from the caller's thread,
        racing that thread's `fetched_records` over the fetcher's record map (a `KeyError` that
        crashes Faust's fetcher and stalls the app for good). `seek_wait` makes the same move (and
        sets Faust's read offset the same way) through the thread's queue."""
        await self.app.consumer.seek_wait({tp: offset})

    def _target(self, partition: int) -> int:
        """Where the engine resumes reading `partition`: the snapshot's next offset, else its start."""
        engine = self.worker.engine
        assert engine is not None  # ready
        offset = engine.offsets.get(partition)
        return offset if offset is not None else self._earliest.get(partition, 0)

    async def _nudge(self, assignment: Any) -> None:
        """A partition that has delivered nothing yet may sit past where the engine resumes (the
        app's group committed further on, `--reset`, or offset reset `latest`): then no batch would
        ever come to position it. Move it back; its first batch is checked as usual (`_position`)."""
        import faust

        for partition in self.worker.engine.partitions if self.worker.engine is not None else ():
            tp = faust.types.TP(self.spec.source, partition)
            if partition in self._positioned or partition in self._nudged or tp not in assignment:
                continue
            position = await self.app.consumer.position(tp)
            target = self._target(partition)
            if position is not None and position > target:
                await self._seek(tp, target)
                self._nudged.add(partition)

    async def _tick(self) -> None:
        if not (self.ready.is_set() and self._assigned.is_set()) or self._stopped():
            return  # joining the group is not idle time
        import faust

        worker, engine, app = self.worker, self.worker.engine, self.app
        assert engine is not None and self._producer is not None  # ready
        assignment = app.consumer.assignment()
        behind = []
        for partition in engine.partitions:  # records on the broker not fetched yet
            tp = faust.types.TP(self.spec.source, partition)
            if tp not in assignment:
                continue
            end = app.consumer.highwater(tp)
            position = await app.consumer.position(tp)
            if end is not None and position is not None and position < end:
                behind.append(partition)
        async with self._lock:
            if self._stopped():
                return
            await self._nudge(assignment)
            now = time.monotonic()
            engine.note_waiting(behind, now)
            engine.advance(now)
            if len(engine.outbox) or now - self._last_checkpoint >= worker.options.checkpoint_interval_s:
                await worker.commit(self._producer, engine, worker.hook)
                self._last_checkpoint = now
        if worker.on_progress is not None and now - self._last_progress >= 1.0:
            worker.on_progress(worker.progress())
            self._last_progress = now

    def _stopped(self) -> bool:
        return self._closing or self.halted.is_set() or self.worker._stop.is_set()

    async def _on_shutdown(self, sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        """The app is stopping (its consumer has stopped): the last checkpoint, then the producer
        stops and the state folder's lock is released."""
        await self.close()

    async def close(self) -> None:
        """Write the last checkpoint (unless the windows failed), stop the producer, release the
        state folder. Idempotent; the app's shutdown calls it."""
        if self._closing:
            return
        self._closing = True
        try:
            async with self._lock:
                worker, producer = self.worker, self._producer
                if self.failure is None and producer is not None and worker.engine is not None:
                    try:
                        await worker.commit(producer, worker.engine, worker.hook)
                    except Exception as exc:
                        self.failure = exc
        finally:
            self.halted.set()
            if self._producer is not None:
                await stop_clients(self._producer, owner=f"stream app {self.spec.name} (faust)")
                self._producer = None
            if self._owns_state:
                self.worker.state.unlock()

    def progress(self) -> Progress:
        """The windows' counters, as `tidelake stream run` shows them (RuntimeError before start)."""
        return self.worker.progress()


def bootstrap_of(app: Any) -> str:
    """ "host:port[,host:port]" from a Faust app's `broker` setting (`kafka://host:port;...`)."""
    urls = app.conf.broker
    servers = ",".join(f"{url.host}:{url.port or 9092}" for url in urls)
    if not servers:
        msg = f"the Faust app {app.conf.id!r} names no broker; pass bootstrap_servers to FaustWindows"
        raise ConfigError(msg)
    return servers


async def micro_batches(events: AsyncIterable[Any], drained: Callable[[], bool],
                        max_batch: int) -> AsyncIterator[list[Any]]:  # fmt: skip
    """The messages (`event.message`) of a Faust stream's `events()`, in lists of at most `max_batch`
    in stream order. A list ends at `max_batch` or as soon as `drained()` says no event is waiting
    in the stream's queue: a batch is whatever the consumer has delivered so far, with no timer
    (Faust's `take_events(max, within)` runs a processor coroutine per event and a background
    drainer, and waits for `within` when the source is quiet). A partial list left when the
    stream ends is not given: its records were never applied, so a restart reads them again."""
    batch: list[Any] = []
    add = batch.append
    async for event in events:
        add(event.message)
        if len(batch) >= max_batch or drained():
            yield batch
            batch = []
            add = batch.append


@functools.cache
def raw_schema() -> type:
    """A `faust.Schema` whose events carry the message's bytes as they came (`RawMessages`)."""
    import faust

    class RawMessages(faust.Schema):
        """The source's schema: each event's key and value are the message's own bytes, with no
        codec, whatever the app's `key_serializer`/`value_serializer` say. The engine reads
        `event.message` and decodes (and dead-letters) records itself, so Faust decoding them
        first would cost time per event and turn a bad record into a Faust decode error."""

        def compile(self, app: Any, **kwargs: Any) -> Any:
            new_event = app.conf.Event  # read once: a settings lookup per event is measurable

            async def decode(message: Any, *, propagate: bool = False) -> Any:
                return new_event(app, message.key, message.value, message.headers, message)

            return decode

    return RawMessages


def unread(messages: list[Any], next_offset: int) -> list[Any]:
    """The messages at or past `next_offset`, in offset order, without repeats."""
    kept = []
    for message in messages:
        if message.offset >= next_offset:
            kept.append(message)
            next_offset = message.offset + 1
    return kept
