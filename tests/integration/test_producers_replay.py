"""Replay and generate through the real broker: every event arrives, per-key order holds, bad lines reach the DLQ."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from core.admin import describe_topics
from core.settings import load_settings
from core.topics import dlq_topic
from producers.generator import Generator, GeneratorOptions
from producers.pacing import Pace, loop_shift_us
from producers.parsing import parse_file
from producers.replay import Replayer, ReplayOptions
from producers.timestamps import TimeFormatter

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data"
ZANBIL = DATA / "zanbil-access-10k" / "access-10k.log"
ELASTIC = DATA / "elastic-apache-logs" / "apache_logs"
CORPUS = Path(__file__).resolve().parents[1] / "data" / "replay"
CLI = [sys.executable, "-m", "tidelake.cli"]


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """Every record of `topic` from the beginning, in partition order; fails if fewer than `expected` arrive."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():  # anything beyond `expected` shows too
            records.extend(batch)
    finally:
        consumer.close()
    assert len(records) >= expected, (
        f"only {len(records)} of {expected} records arrived in {topic} within {timeout_s} s"
    )
    return records


def _settings(bootstrap: str, **producer):
    return load_settings(kafka={"bootstrap_servers": bootstrap}, producer=producer)


def _replay(bootstrap: str, options: ReplayOptions, **producer):
    return asyncio.run(Replayer(_settings(bootstrap, **producer), options).run())


def test_zanbil_replay_delivers_every_event_once_with_per_key_order(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=4)
    summary = _replay(kafka_bootstrap, ReplayOptions(ZANBIL, topic, Pace.from_flags(max_speed=True)))
    assert (summary.sent, summary.rejected) == (10_000, 0)

    records = consume(kafka_bootstrap, topic, 10_000)
    assert len(records) == 10_000
    parsed = parse_file(ZANBIL)
    events = [orjson.loads(r.value) for r in records]
    assert sorted(e["event_id"] for e in events) == sorted(r.event_id for r in parsed.records)
    assert all(r.key.decode() == e["visitor_id"] for r, e in zip(records, events, strict=True))
    assert {e["event_id"]: e for e in events}[parsed.records[5].event_id] == parsed.records[5].payload()

    partitions_of_key = collections.defaultdict(set)
    received_lines = collections.defaultdict(list)
    line_of = {r.event_id: r.line_no for r in parsed.records}
    for record, event in zip(records, events, strict=True):
        partitions_of_key[event["visitor_id"]].add(record.partition)
        received_lines[event["visitor_id"]].append(
            (record.partition, record.offset, line_of[event["event_id"]])
        )
    assert all(len(p) == 1 for p in partitions_of_key.values())
    for hits in received_lines.values():
        lines_in_offset_order = [line for _, _, line in sorted(hits)]
        assert lines_in_offset_order == sorted(lines_in_offset_order)
    assert len({r.partition for r in records}) == 4
    assert describe_topics(kafka_bootstrap, [dlq_topic(topic)])[0].records == 0


def test_elastic_replay_sends_its_malformed_line_to_the_dlq_with_headers(
    kafka_bootstrap: str, make_topic
) -> None:
    topic = make_topic(partitions=4)
    summary = _replay(kafka_bootstrap, ReplayOptions(ELASTIC, topic, Pace.from_flags(max_speed=True)))
    assert (summary.sent, summary.rejected) == (9_999, 1)
    (dead,) = consume(kafka_bootstrap, dlq_topic(topic), 1)
    assert dead.value == ELASTIC.read_bytes().split(b"\n")[8_898]
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers["error.type"] == "malformed-line"
    assert headers["source.file"] == str(ELASTIC)
    assert headers["source.line"] == "8899"
    assert "access-log line" in headers["error.message"]
    assert describe_topics(kafka_bootstrap, [topic])[0].records == 9_999


def test_looping_replay_moves_event_time_forward_each_pass_with_new_ids(
    kafka_bootstrap: str, make_topic
) -> None:
    topic = make_topic(partitions=2)
    options = ReplayOptions(ZANBIL, topic, Pace.from_flags(max_speed=True), loop=True, max_events=25_000)
    summary = _replay(kafka_bootstrap, options)
    assert (summary.sent, summary.passes) == (25_000, 3)
    events = [orjson.loads(r.value) for r in consume(kafka_bootstrap, topic, 25_000)]
    assert len(events) == 25_000
    assert len({e["event_id"] for e in events}) == 25_000
    parsed = parse_file(ZANBIL).records
    first, last = min(r.time_us for r in parsed), max(r.time_us for r in parsed)
    shift = loop_shift_us(1, first, last, len(parsed))
    fmt = TimeFormatter()
    times = collections.Counter(e["event_time"] for e in events)
    assert times[fmt(parsed[0].time_us + shift)] >= 1
    assert times[fmt(parsed[4_999].time_us + 2 * shift)] >= 1
    assert max(times) == fmt(parsed[4_999].time_us + 2 * shift)  # the sample is in time order


def test_rebased_replay_puts_the_first_event_at_now(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=1)
    now_us = 1_800_000_000_000_000  # the replay's wall clock, fixed
    options = ReplayOptions(ZANBIL, topic, Pace.from_flags(max_speed=True), rebase_time=True, max_events=3)
    asyncio.run(Replayer(_settings(kafka_bootstrap), options, wall_clock_us=lambda: now_us).run())
    events = [orjson.loads(r.value) for r in consume(kafka_bootstrap, topic, 3)]
    assert [e["event_time"] for e in events] == [
        "2027-01-15T08:00:00.000000Z",
        "2027-01-15T08:00:02.000000Z",
        "2027-01-15T08:00:02.000000Z",
    ]


def test_csv_replay_keys_by_the_key_field(kafka_bootstrap: str, make_topic, tmp_path: Path) -> None:
    topic = make_topic(partitions=3)
    path = tmp_path / "orders.csv"
    path.write_text(
        "order,user,ts\n" + "".join(f"{i},u{i % 5},{1_700_000_000 + i}\n" for i in range(50)) + "9,,x\n"
    )
    options = ReplayOptions(path, topic, Pace.from_flags(max_speed=True), time_field="ts", key_field="user")
    summary = _replay(kafka_bootstrap, options)
    assert (summary.sent, summary.rejected) == (50, 1)
    records = consume(kafka_bootstrap, topic, 50)
    assert collections.Counter(r.key.decode() for r in records) == {f"u{i}": 10 for i in range(5)}
    for record in records:
        row = orjson.loads(record.value)
        assert record.key.decode() == row["user"]
        assert set(row) == {"event_id", "event_time", "order", "user", "ts"}


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("apache-escapes.log", {}),
        ("events.jsonl", {"time_field": "ts", "key_field": "user"}),
    ],
)
def test_corpus_file_replay_puts_exactly_its_expected_events_and_rejects_on_the_topics(
    kafka_bootstrap: str, make_topic, name: str, options: dict[str, str]
) -> None:
    path = CORPUS / name
    expected = orjson.loads(path.with_name(name + ".expected.json").read_bytes())
    topic = make_topic(partitions=2)
    summary = _replay(kafka_bootstrap, ReplayOptions(path, topic, Pace.from_flags(max_speed=True), **options))
    assert (summary.sent, summary.rejected) == (len(expected["records"]), len(expected["rejects"]))

    records = consume(kafka_bootstrap, topic, len(expected["records"]))
    received = sorted(
        ((r.key.decode(), orjson.loads(r.value)) for r in records), key=lambda kv: kv[1]["event_id"]
    )
    wanted = sorted(((e["key"], e["value"]) for e in expected["records"]), key=lambda kv: kv[1]["event_id"])
    assert received == wanted

    dead = consume(kafka_bootstrap, dlq_topic(topic), len(expected["rejects"]))
    # The parse's own headers; the dead-letter contract adds others (the process, the time of sending).
    parse_headers = ("error.type", "error.message", "source.file", "source.line")
    received_dead = [
        (r.value, {header: value.decode() for header, value in r.headers if header in parse_headers})
        for r in dead
    ]
    assert received_dead == [
        (
            e["raw"].encode(),
            {
                "error.type": e["error_type"],
                "error.message": e["message"],
                "source.file": str(path),
                "source.line": str(e["line"]),
            },
        )
        for e in expected["rejects"]
    ]


def test_generated_clickstream_is_delivered_exactly(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=4)
    generator = Generator(GeneratorOptions(count=4_000, seed=9, hot_key_share=0.1))
    expected = {
        r.event_id: r.key for r in Generator(GeneratorOptions(count=4_000, seed=9, hot_key_share=0.1))
    }
    options = ReplayOptions(None, topic, Pace.from_flags(max_speed=True))
    summary = asyncio.run(Replayer(_settings(kafka_bootstrap), options).run(iter(generator)))
    assert summary.sent == 4_000
    records = consume(kafka_bootstrap, topic, 4_000)
    assert {orjson.loads(r.value)["event_id"]: r.key.decode() for r in records} == expected


def test_cli_replay_reports_its_json_summary(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=4)
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    done = subprocess.run(
        [*CLI, "replay", str(ELASTIC), "--max-speed", "--json", "--topic", topic],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary) == {"sent", "rejected", "seconds", "rate", "topic"}
    assert (summary["sent"], summary["rejected"], summary["topic"]) == (9_999, 1, topic)


def test_cli_replay_interrupted_flushes_and_reports_what_was_sent(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=1)
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    process = subprocess.Popen(
        [*CLI, "replay", str(ZANBIL), "--rate", "200", "--json", "--topic", topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while describe_topics(kafka_bootstrap, [topic])[0].records < 20:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the paced replay sent nothing within 60 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert 20 <= summary["sent"] < 10_000
    assert describe_topics(kafka_bootstrap, [topic])[0].records == summary["sent"]


def test_cli_replay_with_a_bad_time_field_names_the_flag_and_the_fields(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    """A fresh user's finding: `check --format` when it was --time-field that was wrong (JSON lines
    are checked row by row, so the hint comes after the run; a CSV is refused up front)."""
    topic = make_topic(partitions=1)
    events = tmp_path / "clicks.jsonl"
    events.write_text('{"ts": "2024-03-01T10:00:00Z", "user": "u1"}\n')
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "COLUMNS": "300"}

    def replay(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [*CLI, "replay", str(events), "--max-speed", "--topic", topic, *flags]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)

    wrong = replay("--time-field", "time")
    assert wrong.returncode == 1
    assert wrong.stdout.startswith(f"replay: sent 0 events to {topic}, rejected 1 (in {topic}.dlq), ")
    assert wrong.stderr == (
        "error: every line was rejected; the first, line 1 (bad-event-time): no field 'time' (the "
        "--time-field) in this row; fields: ['ts', 'user']. Check --time-field; every rejected line "
        f"is in {topic}.dlq.\n"
    )
