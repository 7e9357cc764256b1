"""Replay benchmark: the zanbil sample looped to 1,000,000 events at --max-speed into a 4-partition
topic, beside a confluent-kafka (librdkafka) producer sending the same serialized events.

Rows:
- `replay end to end`: `tidelake replay --loop --max-speed` work (parse, re-stamp, serialize, batch,
  send, wait for acks) vs the baseline that only sends bytes prepared in advance.
- `send path only`: our sender fed the same prepared bytes, vs the same baseline.
Both producers: idempotent, acks=all, zstd, linger 20 ms, ~1 MB batches, murmur2 partitioning.
"""

from __future__ import annotations

import asyncio
import time

from confluent_kafka import Producer

from bench.harness import BenchContext, Comparison, console
from core.admin import admin_client, create_topics, describe_topics
from core.settings import load_settings
from core.topics import TopicSpec
from producers.pacing import Pace, loop_shift_us
from producers.parsing import parse_file
from producers.replay import EncodedRecord, Replayer, ReplayOptions
from producers.sender import BatchSender
from producers.timestamps import TimeFormatter

SAMPLE = "data/zanbil-access-10k/access-10k.log"
EVENTS = 1_000_000
GOAL = ">= 100,000 events/s, ratio >= 0.5"


def _prepared(count: int) -> list[tuple[bytes | None, bytes]]:
    """The exact (key, value) pairs a looping replay of the sample publishes, in order."""
    from bench.harness import REPO_ROOT

    records = parse_file(REPO_ROOT / SAMPLE).records
    encoded = [EncodedRecord(r) for r in records]
    first, last = min(r.time_us for r in records), max(r.time_us for r in records)
    fmt = TimeFormatter()
    pairs: list[tuple[bytes | None, bytes]] = []
    pass_no = 0
    while len(pairs) < count:
        shift = loop_shift_us(pass_no, first, last, len(records))
        pairs.extend((e.key, e.value(pass_no, shift, fmt)) for e in encoded[: count - len(pairs)])
        pass_no += 1
    return pairs


def _records_in(bootstrap: str, topic: str) -> int:
    return describe_topics(bootstrap, [topic])[0].records


def _confluent(bootstrap: str, topic: str, pairs: list[tuple[bytes | None, bytes]]) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "zstd",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "partitioner": "murmur2_random",  # Kafka's Java/kafka-python/faust partitioning, as ours
        }
    )
    produce, poll = producer.produce, producer.poll
    started = time.perf_counter()
    for index, (key, value) in enumerate(pairs):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.01)
        if index & 0x3FF == 0:
            poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started
    if remaining:
        msg = f"confluent-kafka baseline: {remaining} messages not delivered"
        raise RuntimeError(msg)
    return seconds


async def _send_only(settings, topic: str, pairs: list[tuple[bytes | None, bytes]]) -> float:
    async with BatchSender(settings, topic, client_id="bench-send-only") as sender:
        started = time.perf_counter()
        for start in range(0, len(pairs), 2_000):
            await sender.send_many(pairs[start : start + 2_000])
            await asyncio.sleep(0)
        await sender.flush()
        return time.perf_counter() - started


def run(context: BenchContext) -> list[Comparison]:
    from bench.harness import REPO_ROOT

    count = max(10_000, int(EVENTS * context.scale))
    bootstrap = context.bootstrap_servers
    settings = load_settings(kafka={"bootstrap_servers": bootstrap})
    stamp = time.strftime("%H%M%S")
    topics = {name: f"bench.replay.{name}.{stamp}" for name in ("ours", "send-only", "confluent")}
    create_topics(bootstrap, [TopicSpec(t, 4) for t in topics.values()])

    console.print(f"preparing {count:,} serialized events for the baselines ...")
    pairs = _prepared(count)

    options = ReplayOptions(
        REPO_ROOT / SAMPLE, topics["ours"], Pace.from_flags(max_speed=True), loop=True, max_events=count
    )
    summary = asyncio.run(Replayer(settings, options).run())
    send_only_s = asyncio.run(_send_only(settings, topics["send-only"], pairs))
    confluent_s = _confluent(bootstrap, topics["confluent"], pairs)

    try:
        for name, topic in topics.items():
            arrived = _records_in(bootstrap, topic)
            if arrived != count:
                msg = f"{name}: {arrived:,} of {count:,} events in {topic}"
                raise RuntimeError(msg)
    finally:  # a shared broker should not keep 3 M benchmark records
        with admin_client(bootstrap) as admin:
            admin.delete_topics([*topics.values(), f"{topics['ours']}.dlq"])
    ours_rate = summary.sent / summary.seconds
    send_rate = count / send_only_s
    base_rate = count / confluent_s
    console.print(
        f"replay end to end: {summary.sent:,} events in {summary.seconds:.2f} s = {ours_rate:,.0f}/s; "
        f"send path only: {send_only_s:.2f} s = {send_rate:,.0f}/s; "
        f"confluent-kafka: {confluent_s:.2f} s = {base_rate:,.0f}/s"
    )
    baseline_name = "confluent-kafka, same bytes"
    notes = f"{count:,} events, zanbil looped, 4 partitions, zstd, acks=all, idempotent"
    return [
        Comparison(
            "replay",
            "replay end to end",
            "events/s",
            ours_rate,
            base_rate,
            baseline_name,
            goal=GOAL,
            notes=notes,
        ),
        Comparison(
            "replay",
            "send path only",
            "events/s",
            send_rate,
            base_rate,
            baseline_name,
            goal=GOAL,
            notes=notes,
        ),
    ]
