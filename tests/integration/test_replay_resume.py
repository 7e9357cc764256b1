"""`replay --resume` against the real broker: run again, it continues after what the topic holds,
with new ids and later event times, and never sends an event twice."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from core.admin import describe_topics
from core.settings import load_settings
from core.topics import dlq_topic
from producers.pacing import Pace, loop_shift_us
from producers.parsing import parse_file
from producers.records import pass_event_id
from producers.replay import Replayer, ReplayOptions, ReplaySummary
from producers.resume import id_ends, pass_of
from producers.timestamps import TimeFormatter

pytestmark = pytest.mark.integration

ZANBIL = Path(__file__).resolve().parents[2] / "data" / "zanbil-access-10k" / "access-10k.log"
LINES = 40


@pytest.fixture
def small_log(tmp_path: Path) -> Path:
    """The first 40 lines of the zanbil sample, plus one line that is not an access-log line."""
    folder = tmp_path / "small-shop"
    folder.mkdir()
    path = folder / "access.log"
    head = ZANBIL.read_bytes().split(b"\n")[:LINES]
    path.write_bytes(b"\n".join(head) + b"\nnot a log line\n")
    return path


def _replay(bootstrap: str, options: ReplayOptions) -> ReplaySummary:
    settings = load_settings(kafka={"bootstrap_servers": bootstrap})
    return asyncio.run(Replayer(settings, options).run())


def _events(bootstrap: str, topic: str) -> list[dict]:
    """Every event of the topic, read committed, partition by partition in offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        for _ in range(300):
            if all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
            for records in consumer.poll(timeout_ms=200).values():
                values.extend(r.value for r in records)
        else:
            pytest.fail(f"could not read {topic} to its end within 60 s")
    finally:
        consumer.close()
    return [orjson.loads(v) for v in values]


def test_resume_twice_sends_each_event_once_and_the_second_run_later(
    kafka_bootstrap: str, make_topic, small_log: Path
) -> None:
    topic = make_topic(partitions=2)
    options = ReplayOptions(small_log, topic, Pace.from_flags(max_speed=True), resume=True)

    first = _replay(kafka_bootstrap, options)
    assert (first.sent, first.rejected, first.first_pass, first.passes) == (LINES, 1, 0, 1)
    second = _replay(kafka_bootstrap, options)
    assert (second.sent, second.rejected, second.first_pass, second.passes) == (LINES, 0, 1, 1)

    records = parse_file(small_log).records
    span_first, span_last = min(r.time_us for r in records), max(r.time_us for r in records)
    shift = loop_shift_us(1, span_first, span_last, LINES)
    fmt = TimeFormatter()
    events = _events(kafka_bootstrap, topic)
    ids = sorted(e["event_id"] for e in events)
    assert ids == sorted([r.event_id for r in records] + [pass_event_id(r.event_id, 1) for r in records])
    by_id = {e["event_id"]: e["event_time"] for e in events}
    assert {r.event_id: by_id[r.event_id] for r in records} == {r.event_id: fmt(r.time_us) for r in records}
    assert {r.event_id: by_id[pass_event_id(r.event_id, 1)] for r in records} == {
        r.event_id: fmt(r.time_us + shift) for r in records
    }
    # the second run's events all come after the first run's
    assert min(fmt(r.time_us + shift) for r in records) > max(fmt(r.time_us) for r in records)
    # the 40 lines span 00:26:14 to 00:26:23: the next pass starts one average gap (9 s / 39) later
    assert (fmt(span_last), fmt(span_first + shift)) == (
        "2019-01-22T00:26:23.000000Z",
        "2019-01-22T00:26:23.230769Z",
    )
    # the line that is not an event went to the DLQ once, with pass 0
    assert describe_topics(kafka_bootstrap, [dlq_topic(topic)])[0].records == 1


def test_a_resumed_loop_continues_after_an_interrupted_one(
    kafka_bootstrap: str, make_topic, small_log: Path
) -> None:
    """A looping replay stopped part-way through pass 2 (by --count), then restarted: the restart
    begins at pass 3, so the partial pass is never sent again under the same ids."""
    topic = make_topic(partitions=3)
    pace = Pace.from_flags(max_speed=True)
    looped = ReplayOptions(small_log, topic, pace, loop=True, resume=True, max_events=2 * LINES + 15)
    first = _replay(kafka_bootstrap, looped)
    assert (first.sent, first.first_pass, first.passes) == (2 * LINES + 15, 0, 3)
    again = ReplayOptions(small_log, topic, pace, loop=True, resume=True, max_events=LINES)
    second = _replay(kafka_bootstrap, again)
    assert (second.sent, second.first_pass, second.passes) == (LINES, 3, 1)

    ids = [e["event_id"] for e in _events(kafka_bootstrap, topic)]
    assert (len(ids), len(set(ids))) == (3 * LINES + 15, 3 * LINES + 15)
    ends = id_ends([r.event_id for r in parse_file(small_log).records])
    assert collections.Counter(pass_of(i, ends) for i in ids) == {0: LINES, 1: LINES, 2: 15, 3: LINES}


def test_resume_ignores_events_of_other_files(kafka_bootstrap: str, make_topic, small_log: Path) -> None:
    topic = make_topic(partitions=1)
    pace = Pace.from_flags(max_speed=True)
    other = _replay(kafka_bootstrap, ReplayOptions(ZANBIL, topic, pace, max_events=500))
    assert other.sent == 500
    mine = _replay(kafka_bootstrap, ReplayOptions(small_log, topic, pace, resume=True))
    assert (mine.sent, mine.first_pass) == (LINES, 0)  # the sample's own lines are of another source


def test_cli_resume_says_which_pass_it_started_at(kafka_bootstrap: str, make_topic, small_log: Path) -> None:
    topic = make_topic(partitions=2)
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    command = [sys.executable, "-m", "tidelake.cli", "replay", str(small_log), "--max-speed", "--resume",
               "--topic", topic]  # fmt: skip
    summaries = []
    for _ in range(2):
        done = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        summaries.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [(s["sent"], s["rejected"], s["first_pass"]) for s in summaries] == [(LINES, 1, 0), (LINES, 0, 1)]
    env["COLUMNS"] = "300"  # the summary on one line
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"replay from pass 2: sent {LINES} events to {topic}, rejected 0" in done.stdout
