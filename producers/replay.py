"""`tidelake replay`: a file into a topic, like a Kinesis producer replaying a recorded stream.

Access logs become clickstream events keyed by `visitor_id`; CSV/JSONL rows keep their fields and
are keyed by `--key-field`. Lines that cannot be published go to `<topic>.dlq` with the reason.
`loop` replays the file again and again with event times moved forward by the file's span each
pass (and new event ids), `rebase_time` moves the first event to now, `resume` starts at the first
pass after what the topic already holds of the file (`producers.resume`), so a replay run again,
or a looping one restarted, never sends an event twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from core.admin import create_topics
from core.errors import ConfigError
from core.settings import Settings
from core.topics import KINESIS_RETENTION_MS, TopicSpec, dlq_topic
from producers.pacing import MAX_SPEED, Pace, Schedule, loop_shift_us
from producers.parsing import REJECT_KEEP_BYTES, iter_parsed
from producers.records import TOO_LARGE, Record, Reject
from producers.resume import MAX_TAIL_RECORDS, TopicTail, id_ends, read_tail, start_pass
from producers.sender import BatchSender
from producers.timestamps import TimeFormatter
from producers.topic_fit import first_record_checked

log = logging.getLogger(__name__)

#: Records appended between checks of pace, progress and Ctrl-C.
CHUNK = 2_000
#: Longest single sleep, so Ctrl-C and progress stay responsive at slow paces.
MAX_SLEEP_S = 0.25


@dataclass(frozen=True)
class ReplayOptions:
    path: Path | None  # None: the caller passes the records to `Replayer.run`
    topic: str
    pace: Pace
    fmt: str = "auto"
    time_field: str | None = None
    key_field: str | None = None
    loop: bool = False
    rebase_time: bool = False
    max_events: int | None = None  # stop after this many sent (with --loop: how long to loop)
    source: str | None = None
    resume: bool = False  # start after what the topic already holds of this file (producers.resume)


@dataclass
class ReplaySummary:
    sent: int
    rejected: int
    seconds: float
    topic: str
    interrupted: bool = False
    passes: int = 1
    first_pass: int | None = None  # with --resume: the pass it started at (0: the file's own ids)
    first_reject: Reject | None = None  # the first line sent to the DLQ, for the hint when all were

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "topic": self.topic,
            **({"first_pass": self.first_pass} if self.first_pass is not None else {}),
        }


ProgressCallback = Callable[[int, int], None]


def ensure_topics(settings: Settings, topic: str) -> list[str]:
    """Create the topic (settings.producer.partitions) and its DLQ (1 partition) if missing."""
    retention = {"retention.ms": str(KINESIS_RETENTION_MS)}
    specs = [
        TopicSpec(topic, settings.producer.partitions, retention),
        TopicSpec(dlq_topic(topic), 1, retention),
    ]
    return create_topics(settings.kafka.bootstrap_servers, specs)


class EncodedRecord:
    """A record prepared for fast re-stamping: key bytes, time, id and the JSON of its other fields.

    `value()` gives the same bytes as `orjson.dumps(record.payload(...))` without building a dict.
    """

    __slots__ = ("event_id", "head", "id_end", "key", "line_no", "size", "tail", "time_us")

    #: Bytes of a value around its fields: `{"event_id":"<32>","event_time":"<27>"` before the tail.
    FRAME_BYTES = len(b'{"event_id":"","event_time":""') + 32 + 27

    def __init__(self, record: Record) -> None:
        self.key = record.key.encode() if record.key is not None else None
        self.time_us = record.time_us
        self.event_id = record.event_id
        self.line_no = record.line_no
        event_id = record.event_id.encode()
        self.head = b'{"event_id":"' + event_id[:-8]  # later passes replace the last 8 digits
        self.id_end = event_id[-8:]
        fields = orjson.dumps(record.fields)
        self.tail = b"," + fields[1:] if len(fields) > 2 else b"}"
        self.size = self.FRAME_BYTES + len(self.tail) + (len(self.key) if self.key is not None else 0)

    def value(self, pass_no: int, shift_us: int, fmt: TimeFormatter) -> bytes:
        """The published bytes on pass `pass_no` (ids as `pass_event_id`, time moved by `shift_us`)."""
        id_end = b"%08x" % pass_no if pass_no else self.id_end
        return b"".join(
            (self.head, id_end, b'","event_time":"', fmt.as_bytes(self.time_us + shift_us), b'"', self.tail)
        )


class Replayer:
    """One replay run; `run()` creates the topic and its DLQ if missing, publishes, and returns the
    summary (also when stopped early by `stop`)."""

    def __init__(
        self,
        settings: Settings,
        options: ReplayOptions,
        *,
        on_progress: ProgressCallback | None = None,
        stop: asyncio.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.settings = settings
        self.options = options
        self.on_progress = on_progress or (lambda sent, rejected: None)
        self.stop = stop or asyncio.Event()
        self.clock = clock
        self.wall_clock_us = wall_clock_us
        self._format_time = TimeFormatter()
        self._sent_events = 0
        self.tail = TopicTail()  # --resume: what the topic held of the file before this run
        self.first_reject: Reject | None = None

    async def run(self, items: Iterator[Record | Reject] | None = None) -> ReplaySummary:
        """Publish `items` (default: the records and rejects of `options.path`, parsed as they are read)."""
        options = self.options
        if items is None:
            if options.path is None:
                msg = "a replay needs a file (options.path) or the records to publish"
                raise ConfigError(msg)
            fmt, _, items = iter_parsed(
                options.path,
                fmt=options.fmt,
                source=options.source,
                time_field=options.time_field,
                key_field=options.key_field,
                max_line_bytes=self.settings.producer.max_record_bytes,
            )
            items = first_record_checked(items, options.topic, options.path, fmt)
        items = self._note_rejects(items)
        await asyncio.to_thread(ensure_topics, self.settings, options.topic)
        async with BatchSender(self.settings, options.topic, client_id="tidelake-replay") as sender:
            started = self.clock()  # once connected: the pace and the rate count from here
            self._sender = sender
            self._started = started
            if options.resume:
                first_pass, passes = await self._send_resumed(items)
            else:
                first_pass, passes = 0, await self._send_streamed(items)
            await sender.flush()
            counts = sender.counts
        seconds = self.clock() - started
        self.on_progress(counts.sent, counts.rejected)
        return ReplaySummary(
            counts.sent, counts.rejected, seconds, options.topic, self.stop.is_set(), passes,
            first_pass if options.resume else None, self.first_reject,
        )  # fmt: skip

    def _note_rejects(self, items: Iterator[Record | Reject]) -> Iterator[Record | Reject]:
        """`items`, keeping the first reject for the summary's hint."""
        for item in items:
            if self.first_reject is None and isinstance(item, Reject):
                self.first_reject = item
            yield item

    def _encode(self, item: Record) -> EncodedRecord | Reject:
        """The record ready to send, or its reject when it is over the record size limit."""
        encoded = EncodedRecord(item)
        max_bytes = self.settings.producer.max_record_bytes
        if encoded.size <= max_bytes:
            return encoded
        msg = f"event of {encoded.size:,} bytes is over the {max_bytes:,}-byte record limit"
        raw = orjson.dumps(item.payload())[:REJECT_KEEP_BYTES]
        return Reject(raw, item.line_no, TOO_LARGE, msg, str(self.options.path))

    async def _send_streamed(self, items: Iterator[Record | Reject]) -> int:
        """Pass 0 sent while the file is read, then (--loop) the next passes; returns passes begun."""
        options = self.options
        sender = self._sender
        passes = 1
        kept: list[EncodedRecord] = []
        first_time: int | None = None
        last_time: int | None = None
        shift = 0
        batch: list[EncodedRecord] = []
        for item in items:
            encoded = item if isinstance(item, Reject) else self._encode(item)
            if isinstance(encoded, Reject):
                await sender.send_reject(encoded)
                continue
            if first_time is None:
                first_time = last_time = encoded.time_us
                shift = (self.wall_clock_us() - first_time) if options.rebase_time else 0
                self._schedule = Schedule(options.pace, first_time + shift)
            else:
                first_time = min(first_time, encoded.time_us)
                last_time = max(last_time, encoded.time_us)  # type: ignore[type-var]
            if options.loop:
                kept.append(encoded)
            batch.append(encoded)
            if len(batch) >= CHUNK:
                if not await self._send_chunk(batch, 0, shift):
                    return passes
                batch = []
        if batch:
            await self._send_chunk(batch, 0, shift)
        if options.loop and kept and first_time is not None and last_time is not None:
            while not self._done():
                await self._send_pass(
                    kept, passes, shift + loop_shift_us(passes, first_time, last_time, len(kept))
                )
                passes += 1
        return passes

    async def _send_resumed(self, items: Iterator[Record | Reject]) -> tuple[int, int]:
        """--resume: read the whole file, find the first pass after what the topic holds of it
        (`producers.resume`), send from there (and on, with --loop). The file's rejects go to the
        DLQ with pass 0 only, as in a loop. Returns (first pass, passes begun)."""
        options = self.options
        kept: list[EncodedRecord] = []
        rejects: list[Reject] = []
        for item in items:
            encoded = item if isinstance(item, Reject) else self._encode(item)
            if isinstance(encoded, Reject):
                rejects.append(encoded)
            else:
                kept.append(encoded)
        if not kept:  # nothing to place after the topic's records: the rejects are all there is
            for reject in rejects:
                await self._sender.send_reject(reject)
            return 0, 1
        first_time = min(r.time_us for r in kept)
        last_time = max(r.time_us for r in kept)
        shift = (self.wall_clock_us() - first_time) if options.rebase_time else 0
        ends = id_ends([r.event_id for r in kept])
        bootstrap = self.settings.kafka.bootstrap_servers
        self.tail = await asyncio.to_thread(read_tail, bootstrap, options.topic, ends)
        start = start_pass(self.tail, first_time + shift, last_time + shift, len(kept))
        if not self.tail.complete:
            log.warning(
                "resume: some partitions of %s hold none of this file's events in their last %s records "
                "(read no further); starting at pass %d from what the others hold",
                options.topic, f"{MAX_TAIL_RECORDS:,}", start,
            )  # fmt: skip
        if start == 0:
            for reject in rejects:
                await self._sender.send_reject(reject)
        first_shift = shift + loop_shift_us(start, first_time, last_time, len(kept))
        self._schedule = Schedule(options.pace, first_time + first_shift)
        self._started = self.clock()  # the pace counts from the first send, not from the reading
        pass_no = start
        while not self._done():
            pass_shift = shift + loop_shift_us(pass_no, first_time, last_time, len(kept))
            await self._send_pass(kept, pass_no, pass_shift)
            pass_no += 1
            if not options.loop:
                break
        return start, max(1, pass_no - start)

    async def _send_pass(self, kept: list[EncodedRecord], pass_no: int, shift_us: int) -> None:
        for start in range(0, len(kept), CHUNK):
            if not await self._send_chunk(kept[start : start + CHUNK], pass_no, shift_us):
                return

    def _done(self) -> bool:
        limit = self.options.max_events
        return self.stop.is_set() or (limit is not None and self._sent_events >= limit)

    async def _send_chunk(self, chunk: list[EncodedRecord], pass_no: int, shift_us: int) -> bool:
        """Send a chunk at the pace asked; False when the run should end (stopped or enough sent)."""
        if self._done():
            return False
        limit = self.options.max_events
        if limit is not None and self._sent_events + len(chunk) > limit:
            chunk = chunk[: limit - self._sent_events]
        sender = self._sender
        fmt = self._format_time
        if self.options.pace.mode == MAX_SPEED:
            ready = [(item.key, item.value(pass_no, shift_us, fmt)) for item in chunk]
            await sender.send_many(ready)
            self._sent_events += len(ready)
            self.on_progress(sender.counts.sent, sender.counts.rejected)
            await asyncio.sleep(0)  # let the producer's I/O task run
            return True
        for item in chunk:
            due = self._schedule.due_s(self._sent_events, item.time_us + shift_us)
            if not await self._wait_until(due):
                return False
            await sender.send(item.key, item.value(pass_no, shift_us, fmt))
            self._sent_events += 1
        self.on_progress(sender.counts.sent, sender.counts.rejected)
        return True

    async def _wait_until(self, due_s: float) -> bool:
        """Sleep until `due_s` after the start, sending open batches first; False if stopped meanwhile."""
        sender = self._sender
        while (wait := self._started + due_s - self.clock()) > 0:
            await sender.submit_open()
            self.on_progress(sender.counts.sent, sender.counts.rejected)
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=min(wait, MAX_SLEEP_S))
                return False
            except TimeoutError:
                continue
        return not self.stop.is_set()


async def replay(settings: Settings, options: ReplayOptions, **kwargs) -> ReplaySummary:
    """Replay `options.path` (topics created if missing); see `Replayer` for the keyword arguments."""
    return await Replayer(settings, options, **kwargs).run()
