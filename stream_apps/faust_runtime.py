"""The Faust host: the same `WindowEngine` run inside a real `faust.App` (agent, timer, topics).

One `faust.App` per spec (id `tidelake-<name>`, web server off, data folder under the app's state
folder). An agent on the source topic takes micro-batches (`stream.take_events(n, within=tick)`)
and feeds them, per partition, to the engine; an `@app.timer(tick)` closes windows by watermark or
idle timeout and checkpoints exactly as the aiokafka runtime does (`StreamWorker.commit`): one Kafka
transaction carrying the outbox (final rows, late events, bad records), the source offsets and the
checkpoint's generation, with the snapshot made durable before the commit.

Output goes through a separate aiokafka transactional producer, not Faust's producer nor Faust's
`processing_guarantee="exactly_once"`: Faust's transactions follow its own per-partition offset
commits, and sends from a timer (outside any event) bypass them (faust-streaming#177).

State: the engine's snapshot files (stream_apps/checkpoint.py), not a Faust Table. The engine's state
is one object spanning every partition (the watermark is a minimum over partitions, and keys such as
`page` span partitions), while a Faust table is sharded by the source partition of each key; and
Faust's changelog recovery has open bugs (faust-streaming#176, #597) and restores windows that never
close (#193).

Offsets: the checkpoint transactions commit them to `tidelake-stream-<app>`. The source topic is
declared with `acks=False`, so Faust never commits offsets of it in its own group: Faust starts each
partition where that group has nothing committed (the beginning), and the agent seeks once per
partition to the snapshot's next offset and drops records below it. Faust's own at-least-once
commits would otherwise run ahead of the checkpoint and lose events after a `kill -9`.

Run programmatically with `faust.contrib.asgi.faust_app_running` on the caller's loop: no argv
parsing (`app.main()`), no signal handlers or logging set up by Faust (`faust.Worker`); Faust's
logging is raised to ERROR and goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from core.errors import BrokerUnavailable
from core.status_board import STOPPED
from stream_apps.worker import Progress, StreamWorker

log = logging.getLogger(__name__)

#: Loggers of Faust and the libraries under it: their INFO/WARNING chatter stays out of the way.
NOISY_LOGGERS = ("faust", "mode", "aiokafka", "kafka")


def quiet_faust_logging() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class FaustWorker(StreamWorker):
    """One worker of one app hosted in a Faust app; owns every partition of the source topic.

    Same interface as `StreamWorker` (`run()`, `stop()`, `progress()`, `on_progress`), so the CLI and
    benchmarks choose the runtime with one flag."""

    async def _run(self, partitions: list[int]) -> Progress:
        import faust  # imported here: importing Faust is slow and only this runtime needs it
        from faust.contrib.asgi import faust_app_running

        quiet_faust_logging()
        producer = self._producer(partitions)  # transactional, beside Faust's own (module docstring)
        await self._start_producer(producer)
        try:
            return await self._run_app(faust, faust_app_running, producer, partitions)
        finally:
            await producer.stop()

    async def _run_app(self, faust: Any, faust_app_running: Any, producer: AIOKafkaProducer,
                       partitions: list[int]) -> Progress:  # fmt: skip
        spec, options = self.spec, self.options
        engine, hook = await self._restored_engine(partitions)
        app = faust.App(
            f"tidelake-{spec.name}",
            broker=f"kafka://{options.bootstrap_servers}",
            datadir=str(self.state.path / "faust"),
            web_enabled=False,
            value_serializer="raw",
            key_serializer="raw",
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            consumer_max_fetch_size=4 * 1024 * 1024,
            stream_buffer_maxsize=options.max_batch,
            producer_linger=0.005,
            producer_max_batch_size=256 * 1024,
            producer_acks=-1,
            # Static membership: one worker per app, so a restart after kill -9 takes the dead
            # member's place at once instead of waiting for its session (60 s by default) to expire.
            consumer_group_instance_id=f"tidelake-{spec.name}-worker",
        )
        source = app.topic(spec.source, acks=False)  # offsets live in the snapshot (module docstring)
        lock = asyncio.Lock()
        ready = asyncio.Event()
        halted = asyncio.Event()  # a failure inside Faust's tasks ends this run (run() may retry it)
        positioned: set[int] = set()
        failure: list[BaseException] = []
        last = {"checkpoint": time.monotonic(), "progress": time.monotonic()}

        async def on_assigned(sender: Any, /, *args: Any, signal: Any = None, **kwargs: Any) -> None:
            (assigned,) = args
            now = time.monotonic()
            for tp in assigned:
                if tp.topic == spec.source:
                    engine.last_seen_s[tp.partition] = now  # start-up time does not count as idle
            ready.set()

        app.on_partitions_assigned.connect(on_assigned)

        async def apply(events: list[Any]) -> None:
            by_partition: dict[int, list[Any]] = {}
            for event in events:
                message = event.message
                by_partition.setdefault(message.partition, []).append(message)
            now = time.monotonic()
            async with lock:
                if self._stop.is_set() or halted.is_set():
                    return  # after the final checkpoint: a restart reads these again
                for partition, messages in by_partition.items():
                    expected = engine.offsets.get(partition)
                    if expected is not None and messages[0].offset < expected and partition not in positioned:
                        await app.consumer.seek(faust.types.TP(spec.source, partition), expected)
                    positioned.add(partition)
                    # Only records past what the engine has read, each once: records fetched before
                    # the seek took effect arrive again after it, even twice within one batch.
                    messages = _unread(messages, expected if expected is not None else 0)
                    if messages:
                        engine.process(partition, messages, now)
                if (
                    options.stop_after_events is not None
                    and engine.counters.events_in >= options.stop_after_events
                ):
                    self._stop.set()

        @app.agent(source, concurrency=1)
        async def windows(stream: Any) -> None:
            async for events in stream.take_events(options.max_batch, within=options.tick_s):
                try:
                    await apply(events)
                except Exception as exc:  # a crash inside Faust would only be logged: stop the app
                    failure.append(exc)
                    halted.set()
                    raise

        @app.timer(options.tick_s)
        async def close_windows() -> None:
            if not ready.is_set() or self._stop.is_set() or halted.is_set():
                return
            try:
                behind = []
                for partition in engine.partitions:  # records on the broker not fetched yet
                    tp = faust.types.TP(spec.source, partition)
                    end = app.consumer.highwater(tp)
                    position = await app.consumer.position(tp)
                    if end is not None and position is not None and position < end:
                        behind.append(partition)
                async with lock:
                    now = time.monotonic()
                    engine.note_waiting(behind, now)
                    engine.advance(now)
                    if len(engine.outbox) or now - last["checkpoint"] >= options.checkpoint_interval_s:
                        await self.commit(producer, engine, hook)
                        last["checkpoint"] = now
                if self.on_progress is not None and now - last["progress"] >= 1.0:
                    self.on_progress(self.progress())
                    last["progress"] = now
            except Exception as exc:
                failure.append(exc)
                halted.set()

        async with faust_app_running(app, stop_timeout=60.0):
            waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(halted.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            if not failure:
                async with lock:
                    await self.commit(producer, engine, hook)
        if failure:
            exc = failure[0]
            if isinstance(exc, BrokerUnavailable):
                raise exc
            if isinstance(exc, KafkaError):
                msg = f"stream app {spec.name} (faust runtime): Kafka failed: {exc.__class__.__name__}: {exc}"
                raise BrokerUnavailable(msg) from exc
            raise exc
        self._state = STOPPED
        return self.progress()


def _unread(messages: list[Any], next_offset: int) -> list[Any]:
    """The messages at or past `next_offset`, in offset order, without repeats."""
    kept = []
    for message in messages:
        if message.offset >= next_offset:
            kept.append(message)
            next_offset = message.offset + 1
    return kept
