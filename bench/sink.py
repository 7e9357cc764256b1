"""Sink benchmark: a delivery stream into Parquet beside a consumer that only reads and discards.

Setup: 1,000,000 x scale clickstream events (JSON, ~330 bytes) are produced into a 4-partition topic
with confluent-kafka before anything is timed.

Rows:
- `throughput`: events/s of `DeliveryStream` (kafka-python consumer -> Arrow JSON conversion ->
  Parquet files, manifests and commits) vs a kafka-python consumer with the same client settings
  (`CONSUMER_TUNING`), also in a consumer group of its own, that reads the same records and
  discards them. The sink's time runs from its start to its last file durable and committed, the
  baseline's from its start to its last record (neither counts closing the consumer). The two alternate `ROUNDS` times (the machine is
  shared) and the best run of each is reported.
- `freshness p50` / `p99`: with a 1 s buffering interval and events produced at a steady rate,
  seconds from produce to the row being readable by DuckDB (its file visible in the lake), vs the
  same events' produce-to-consume time on a plain kafka-python consumer (the floor any sink has).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import duckdb
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition

from bench.harness import BenchContext, Comparison, console
from core.admin import create_topics
from core.lake import is_visible_file
from core.settings import load_settings
from core.topics import TopicSpec
from sinks.config import parse_config
from sinks.consumer import CONSUMER_TUNING
from sinks.stream import DeliveryStream

EVENTS = 1_000_000
PARTITIONS = 4
ROUNDS = 3  # throughput runs of each, alternated; the best of each is reported
FRESHNESS_RATE = 2_000  # events/s during the freshness run
FRESHNESS_SECONDS = 20
GOAL_THROUGHPUT = ">= 100,000 events/s, ratio >= 0.8"
GOAL_FRESHNESS = "p99 <= 2.5 s"


def _event(i: int, now_us: int | None = None) -> bytes:
    """A clickstream event; `now_us` (produce time) rides in the event_id for the freshness run."""
    minute, second = divmod(i // 10 % 3600, 60)
    ident = f"{now_us}-{i}" if now_us is not None else f"bench-{i:09d}"
    return (
        f'{{"event_id":"{ident}","event_time":"2019-01-22T{i // 36000 % 24:02d}:{minute:02d}:{second:02d}.{i % 1000000:06d}Z",'
        f'"visitor_id":"v{i % 9973}","method":"GET","url":"/product/{i % 500}?utm=bench","page":"/product/{i % 500}",'
        f'"referrer":"https://www.example.com/search?q={i % 71}","status":{200 if i % 20 else 404},"bytes":{1000 + i % 9000},'
        f'"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36","is_bot":{"true" if i % 31 == 0 else "false"},'
        f'"source":"bench"}}'
    ).encode()


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000, "compression.type": "none"}
    )
    for i in range(count):
        while True:
            try:
                producer.produce(topic, _event(i), str(i % 9973).encode())
                break
            except BufferError:
                producer.poll(0.01)
        if i & 0xFFF == 0:
            producer.poll(0)
    if producer.flush(120):
        msg = "benchmark setup: not every event was delivered to Kafka"
        raise RuntimeError(msg)


def _baseline_read(bootstrap: str, topic: str, count: int) -> float:
    """Seconds for kafka-python to read `count` records and discard them: the same client settings
    as the sink, and like the sink a member of a consumer group (so both pay the group join)."""
    started = time.perf_counter()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"bench-baseline-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CONSUMER_TUNING,
    )
    consumer.subscribe(topics=[topic])
    seen = 0
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    seconds = time.perf_counter() - started
    consumer.close(autocommit=False)
    return seconds


def _delivery_stream(
    bootstrap: str, topic: str, lake: Path, name: str, buffer: dict[str, float]
) -> DeliveryStream:
    """The clickstream delivery stream of the shipped config, on `topic`, in a group of its own."""
    settings = load_settings(kafka={"bootstrap_servers": bootstrap}, lake={"root": lake})
    config = parse_config(
        {
            "name": name,
            "topics": [topic],
            "dataset": "clickstream_events",
            "schema": "clickstream",
            "group_id": f"{name}-{uuid.uuid4().hex[:8]}",
            "buffer": buffer,
        },
        "bench",
    )
    return DeliveryStream(config, settings)


def _sink_read(bootstrap: str, topic: str, count: int, lake: Path) -> float:
    stream = _delivery_stream(
        bootstrap, topic, lake, "bench-sink", {"interval_s": 60, "size_mb": 64, "records": 200_000}
    )
    started = time.monotonic()
    summary = stream.run(max_records=count)
    # to its last commit: like the baseline's, the time leaves out closing the consumer
    seconds = (summary.stopped_monotonic or time.monotonic()) - started
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT count(*) FROM read_parquet('{lake}/clickstream_events/**/*.parquet')"
        ).fetchone()
    if rows is None or rows[0] != count or summary.rows_written != count:
        msg = f"the sink wrote {rows} rows for {count} events ({summary.as_dict()})"
        raise RuntimeError(msg)
    console.print(
        f"sink: {summary.files} files, {summary.bytes / 1e6:.1f} MB, flushes {dict(summary.flushes)}"
    )
    return seconds


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _freshness(bootstrap: str, scratch: Path, seconds: float) -> tuple[list[float], list[float]]:
    """(produce->queryable, produce->consumed) seconds for events sent at a steady rate."""
    topic = f"bench.sink.fresh.{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [TopicSpec(topic, PARTITIONS)])
    lake = scratch / "fresh-lake"
    stream = _delivery_stream(
        bootstrap, topic, lake, "bench-fresh", {"interval_s": 1, "size_mb": 64, "records": 1_000_000}
    )
    stop = threading.Event()
    sink = threading.Thread(target=stream.run, kwargs={"stop_event": stop}, daemon=True)
    consumed: list[float] = []
    queryable: list[float] = []

    def consume() -> None:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **CONSUMER_TUNING)
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                now = time.time()
                consumed.extend(now - int(r.value[13 : r.value.index(b"-", 13)]) / 1e6 for r in records)
        consumer.close()

    def watch() -> None:
        seen: set[Path] = set()
        with duckdb.connect() as con:
            while not stop.is_set():
                for path in (lake / "clickstream_events").rglob("*.parquet") if lake.exists() else []:
                    if path in seen or not is_visible_file(path):
                        continue
                    ids = con.execute("SELECT event_id FROM read_parquet(?)", [str(path)]).fetchall()
                    now = time.time()
                    queryable.extend(now - int(i.split("-")[0]) / 1e6 for (i,) in ids)
                    seen.add(path)
                time.sleep(0.02)

    threads = [threading.Thread(target=consume, daemon=True), threading.Thread(target=watch, daemon=True)]
    sink.start()
    for thread in threads:
        thread.start()
    time.sleep(3)  # group join
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent = 0
    started = time.time()
    while time.time() - started < seconds:
        tick = time.time()
        for _ in range(FRESHNESS_RATE // 20):
            producer.produce(topic, _event(sent, int(time.time() * 1e6)), str(sent % 97).encode())
            sent += 1
        producer.poll(0)
        time.sleep(max(0.0, 0.05 - (time.time() - tick)))
    producer.flush(30)
    deadline = time.time() + 15
    while (len(queryable) < sent or len(consumed) < sent) and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    sink.join(30)
    for thread in threads:
        thread.join(30)
    if len(queryable) != sent or len(consumed) != sent:
        msg = f"freshness run: sent {sent}, queryable {len(queryable)}, consumed {len(consumed)}"
        raise RuntimeError(msg)
    return queryable, consumed


def run(context: BenchContext) -> list[Comparison]:
    count = max(10_000, int(EVENTS * context.scale))
    bootstrap = context.bootstrap_servers
    topic = f"bench.sink.{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [TopicSpec(topic, PARTITIONS)])
    started = time.perf_counter()
    _produce(bootstrap, topic, count)
    console.print(
        f"setup: {count:,} events in {topic} ({PARTITIONS} partitions) in {time.perf_counter() - started:.1f} s"
    )
    baseline_runs: list[float] = []
    sink_runs: list[float] = []
    for run_index in range(ROUNDS):  # alternated, so a burst of load on the shared machine hits both
        baseline_runs.append(_baseline_read(bootstrap, topic, count))
        console.print(f"baseline kafka-python read+discard: {count / baseline_runs[-1]:,.0f} events/s")
        sink_runs.append(_sink_read(bootstrap, topic, count, context.scratch / f"lake-{run_index}"))
        console.print(f"delivery stream to Parquet: {count / sink_runs[-1]:,.0f} events/s")
    baseline_s, ours_s = min(baseline_runs), min(sink_runs)
    fresh_s = max(5.0, FRESHNESS_SECONDS * min(1.0, context.scale * 2))
    queryable, consumed = _freshness(bootstrap, context.scratch, fresh_s)
    notes = f"{count:,} events, 4 partitions, snappy, 200k-record flushes, best of {ROUNDS} alternated runs"
    fresh_notes = f"{len(queryable):,} events at {FRESHNESS_RATE}/s, interval 1 s"
    return [
        Comparison("sink", "throughput", "events/s", count / ours_s, count / baseline_s, "kafka-python read+discard",
                   goal=GOAL_THROUGHPUT, notes=notes),
        Comparison("sink", "freshness p50", "s", _percentile(queryable, 0.5), _percentile(consumed, 0.5),
                   "produce->consumed", higher_is_better=False, goal="", notes=fresh_notes),
        Comparison("sink", "freshness p99", "s", _percentile(queryable, 0.99), _percentile(consumed, 0.99),
                   "produce->consumed", higher_is_better=False, goal=GOAL_FRESHNESS, notes=fresh_notes),
    ]  # fmt: skip


__all__ = ["run"]
