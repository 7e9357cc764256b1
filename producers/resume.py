"""Where `tidelake replay --resume` starts: after what the topic already holds of the same file.

A replay's records carry their line's `event_id` on pass 0 and, on pass p, the same id with its
last 8 hex digits replaced by p (`producers.records.pass_event_id`). So the first 24 hex digits tell
which line of the file a record in the topic came from, and the last 8 which pass. Resuming reads
the end of each partition (read committed, going further back only while it finds no record of the
file, up to `MAX_TAIL_RECORDS`), and starts at the first pass that is both after the highest pass
found and entirely later in event time than the latest event found (`first_pass_after`), so ids
and event times are new. A topic that holds nothing of the file gives pass 0.

Like a Kinesis producer that checks the stream's last sequence number before it resumes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from core.admin import START_HINT
from core.errors import BrokerUnavailable
from producers.pacing import first_pass_after
from producers.timestamps import parse_time

#: Records read at the end of each partition first; four times more each time none is of the file.
TAIL_RECORDS = 256
#: The furthest back a partition is read, so resuming stays quick on a long topic.
MAX_TAIL_RECORDS = 262_144
#: Bound on reading the tails, for a broker that stops answering half-way.
TAIL_TIMEOUT_S = 60.0
_ID_END = 8


@dataclass(frozen=True)
class TopicTail:
    """What the end of a topic holds of one file."""

    last_pass: int | None = None  # None: no record of the file was found
    latest_time_us: int | None = None  # the latest event time among the file's records read
    records_read: int = 0
    #: False when some partition was read back `MAX_TAIL_RECORDS` without finding the file
    #: (the file may be further back: its pass is then not known there)
    complete: bool = True


def id_ends(event_ids: list[str]) -> dict[str, str]:
    """{first 24 hex digits: last 8} of a file's pass-0 ids: how `pass_of` recognises its lines."""
    return {event_id[:-_ID_END]: event_id[-_ID_END:] for event_id in event_ids}


def pass_of(event_id: object, ends: Mapping[str, str]) -> int | None:
    """The pass that published `event_id`, or None when the id is not of a line of this file."""
    if not isinstance(event_id, str) or len(event_id) <= _ID_END:
        return None
    original_end = ends.get(event_id[:-_ID_END])
    if original_end is None:
        return None
    tail = event_id[-_ID_END:]
    if tail == original_end:
        return 0
    try:
        return int(tail, 16)
    except ValueError:
        return None


def start_pass(tail: TopicTail, first_time_us: int, last_time_us: int, count: int) -> int:
    """The pass a resumed replay starts at, given the file's event times (as this run shifts them)."""
    if tail.last_pass is None:
        return 0
    after_time = (
        first_pass_after(tail.latest_time_us, first_time_us, last_time_us, count)
        if tail.latest_time_us is not None
        else 0
    )
    return max(tail.last_pass + 1, after_time)


def read_tail(
    bootstrap_servers: str,
    topic: str,
    ends: Mapping[str, str],
    *,
    tail_records: int = TAIL_RECORDS,
    max_records: int = MAX_TAIL_RECORDS,
    timeout_s: float = TAIL_TIMEOUT_S,
) -> TopicTail:
    """The highest pass and latest event time of the file's records at the end of `topic`."""
    deadline = time.monotonic() + timeout_s
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", client_id="tidelake-replay-resume",
        )  # fmt: skip
    except KafkaError as exc:
        msg = f"cannot read the end of {topic!r} at {bootstrap_servers} to resume: {exc}; {START_HINT}"
        raise BrokerUnavailable(msg) from exc
    last_pass: int | None = None
    latest: int | None = None
    read = 0
    complete = True
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        begins = consumer.beginning_offsets(tps) if tps else {}
        last = consumer.end_offsets(tps) if tps else {}
        for tp in tps:
            stop, window, found = last[tp], tail_records, False
            while stop > begins[tp] and not found:
                start = max(begins[tp], last[tp] - window)
                for value in _values(consumer, tp, start, stop, deadline):
                    read += 1
                    event = _event(value)
                    if event is None or (pass_no := pass_of(event.get("event_id"), ends)) is None:
                        continue
                    found = True
                    last_pass = pass_no if last_pass is None else max(last_pass, pass_no)
                    time_us = _time_us(event.get("event_time"))
                    if time_us is not None:
                        latest = time_us if latest is None else max(latest, time_us)
                if not found and start > begins[tp] and last[tp] - start >= max_records:
                    complete = False
                    break
                stop, window = start, window * 4
    except KafkaError as exc:
        msg = f"cannot read the end of {topic!r} at {bootstrap_servers} to resume: {exc}; {START_HINT}"
        raise BrokerUnavailable(msg) from exc
    finally:
        consumer.close()
    return TopicTail(last_pass, latest, read, complete)


def _values(
    consumer: KafkaConsumer, tp: TopicPartition, start: int, stop: int, deadline: float
) -> list[bytes]:
    """The values at offsets [start, stop) of one partition (fewer when some were aborted)."""
    consumer.assign([tp])
    consumer.seek(tp, start)
    values: list[bytes] = []
    while consumer.position(tp) < stop:
        if time.monotonic() > deadline:
            msg = (
                f"reading the end of {tp.topic}[{tp.partition}] to resume did not finish in time (at offset "
                f"{consumer.position(tp)} of {stop}); check the broker, or replay without --resume"
            )
            raise BrokerUnavailable(msg)
        for records in consumer.poll(timeout_ms=200).values():
            values.extend(r.value for r in records if r.offset < stop and r.value is not None)
    return values


def _event(value: bytes) -> dict | None:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _time_us(value: object) -> int | None:
    try:
        return parse_time(value)
    except ValueError:
        return None
