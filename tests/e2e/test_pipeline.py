"""The whole pipeline on the shipped zanbil sample, reconciled exactly: `tidelake demo` as a user
runs it, and a broker restart in the middle of the replay."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from core.admin import describe_topics
from core.settings import load_settings
from core.topics import CLICKSTREAM_EVENTS, dlq_topic
from producers.resume import id_ends, pass_of
from tests.e2e.pipeline_checks import app_mismatches, processes_with_env, sample_events
from tidelake.broker import LocalBroker, free_port
from tidelake.demo import Demo, DemoOptions

pytestmark = pytest.mark.e2e
SAMPLE_LINES = 10_000


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return sample_events()


def demo_command(
    bootstrap: str, state_dir: Path, lake: Path, *extra: str, pace: tuple[str, ...] = ("--max-speed",)
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of `tidelake demo --max-speed --json` on `bootstrap`, its state in `state_dir`."""
    command = [sys.executable, "-m", "tidelake.cli", "demo", *pace, "--json", "--lake", str(lake),
               "--port", str(free_port()), *extra]  # fmt: skip
    env = {
        **os.environ,
        "TIDELAKE_RUNTIME__STATE_DIR": str(state_dir),
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
    }
    return command, env


def raw_event_counts(lake: Path) -> tuple[int, int]:
    files = [str(p) for p in (lake / "clickstream_events").rglob("*.parquet") if not p.name.startswith(".")]
    ((rows, distinct),) = duckdb.sql(
        f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet({files})"
    ).fetchall()
    return rows, distinct


def test_demo_reconciles_every_event_and_window_and_leaves_nothing_running(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    command, env = demo_command(bootstrap, state_dir, tmp_path / "lake")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    # events replayed = rows in clickstream_events + records in the DLQ, each event once
    assert report["replay"]["sent"] == SAMPLE_LINES
    assert report["replay"]["rejected"] == 0
    (dlq,) = describe_topics(bootstrap, [dlq_topic(CLICKSTREAM_EVENTS)])
    rows, distinct = raw_event_counts(tmp_path / "lake")
    assert (rows, distinct, dlq.records) == (SAMPLE_LINES, SAMPLE_LINES, 0)

    # every analytics dataset equals DuckDB's GROUP BY of the source file
    assert app_mismatches(tmp_path / "lake", events) == {}

    # the named queries answer what the events say: top pages per hour, bots excluded
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_json_auto(?)", [str(write_jsonl(tmp_path, events))]
    )
    expected_top = con.execute(
        "SELECT strftime(date_trunc('hour', event_time::TIMESTAMPTZ), '%Y-%m-%d %H:00:00+00:00'), "
        "row_number() OVER (PARTITION BY date_trunc('hour', event_time::TIMESTAMPTZ) ORDER BY count(*) DESC, page), "
        "page, count(*) FROM events WHERE NOT is_bot GROUP BY date_trunc('hour', event_time::TIMESTAMPTZ), page "
        "QUALIFY row_number() OVER (PARTITION BY date_trunc('hour', event_time::TIMESTAMPTZ) ORDER BY count(*) DESC, page) <= 3 "
        "ORDER BY 1, 2"
    ).fetchall()
    assert report["answers"]["top_pages_per_hour"] == [[h, str(r), p, str(v)] for h, r, p, v in expected_top]

    # stopping the demo leaves no process of it behind
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []


def write_jsonl(folder: Path, events: list[dict]) -> Path:
    path = folder / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_broker_restart_mid_replay_loses_and_duplicates_nothing(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    settings = load_settings(
        kafka={"bootstrap_servers": bootstrap},
        lake={"root": tmp_path / "lake"},
        runtime={"state_dir": tmp_path / "state"},
    )
    demo = Demo(settings, DemoOptions(speed=200.0, serve_port=free_port()), broker_configured=True)
    try:
        demo.start_pipeline()
        demo.start_replay()  # 2,443 s of event time at 200x: about 12 s
        # restart the broker once a fifth of the sample is in, while the replay goes on
        demo.watch(lambda s: s.events_in >= 2_000, 120, lambda s: None)
        own_broker.stop()
        time.sleep(1.0)
        own_broker.start()
        demo.watch(lambda s: demo.replay_summary() is not None, 300, lambda s: None)
        summary = demo.replay_summary()
        assert summary is not None
        assert (summary["sent"], summary["rejected"]) == (SAMPLE_LINES, 0)
        demo.watch(demo.drained(SAMPLE_LINES), 300, lambda s: None)
    finally:
        demo.stop()
    rows, distinct = raw_event_counts(tmp_path / "lake")
    assert (rows, distinct) == (SAMPLE_LINES, SAMPLE_LINES)
    (topic,) = describe_topics(bootstrap, [CLICKSTREAM_EVENTS])
    assert topic.records == SAMPLE_LINES  # the idempotent producer wrote no duplicate into Kafka either
    assert app_mismatches(tmp_path / "lake", events) == {}


def test_sigterm_stops_a_kept_running_demo_and_everything_it_started(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    command, env = demo_command(bootstrap, state_dir, tmp_path / "lake", "--keep-running")
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        first_line = demo.stdout.readline()  # type: ignore[union-attr]  # the answers, printed before it keeps running
        assert json.loads(first_line)["replay"]["sent"] == SAMPLE_LINES
        children = set(processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir))) - {demo.pid}
        assert len(children) == 11  # six stream apps, four delivery streams, the query server
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=120) == 130
    finally:
        if demo.poll() is None:  # a failed assertion above: still stop the demo the clean way
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=120)
            except subprocess.TimeoutExpired:
                demo.kill()
        demo.communicate(timeout=30)
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []


def stop_demo(demo: subprocess.Popen) -> int:
    """SIGTERM, as Ctrl-C would: the demo stops every process it started; its exit code."""
    if demo.poll() is None:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            demo.kill()
    demo.communicate(timeout=30)
    return demo.returncode


def test_demo_run_again_or_looped_never_sends_an_event_twice_and_a_new_lake_gets_the_events(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    """Issue 13: a second `make demo` then `make demo DEMO_ARGS="--keep-running --loop"` replayed
    pass 0 again (the lake held 23,890 rows of 13,890 ids); a second checkout's new lake got nothing."""
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    lake, other_lake = tmp_path / "lake", tmp_path / "other-checkout" / "lake"

    def run_demo(demo_lake: Path) -> dict:
        command, env = demo_command(bootstrap, state_dir, demo_lake)
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run_demo(lake), run_demo(lake)
    assert (first["replay"]["sent"], first["replay"]["first_pass"]) == (SAMPLE_LINES, 0)
    assert second["replay"] == {}  # nothing replayed: the topic and this lake hold the sample
    assert raw_event_counts(lake) == (SAMPLE_LINES, SAMPLE_LINES)
    logo = ["2019-01-22 00:00:00+00:00", "1", "/settings/logo", "195"]
    assert first["answers"]["top_pages_per_hour"][0] == logo
    assert second["answers"] == first["answers"]

    # a second checkout: same broker and state, a lake of its own that holds nothing yet
    third = run_demo(other_lake)
    assert third["replay"] == {}
    assert raw_event_counts(other_lake) == (SAMPLE_LINES, SAMPLE_LINES)
    assert third["answers"] == first["answers"]

    # the first lake once more, looping: it continues after what the topic holds (pass 1 on)
    command, env = demo_command(bootstrap, state_dir, lake, "--loop", pace=("--speed", "500"))
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        line = demo.stdout.readline()  # type: ignore[union-attr]  # the answers, once its first pass is in
    finally:
        code = stop_demo(demo)
    assert line, f"the looping demo printed no answers (exit {code})"
    looped = json.loads(line)
    assert code == 130
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []

    ids = pass_counts(ends := id_ends([e["event_id"] for e in events]), lake_event_ids(lake))
    assert ids[0] == SAMPLE_LINES and ids[1] >= 1  # pass 0 once, and the loop's passes after it
    rows, distinct = raw_event_counts(lake)
    assert rows == distinct == sum(ids.values())
    assert rows >= 2 * SAMPLE_LINES  # the demo answered once its first pass was in the lake
    # the first pass's answers are unchanged: its hour 00 still has 195 views of /settings/logo
    assert first_pass_logo_views(lake) == 195
    assert looped["answers"]["bounce_rate"] != []

    # the topic itself holds each event once: pass 0 and every pass the loop began, none twice
    (topic,) = describe_topics(bootstrap, [CLICKSTREAM_EVENTS])
    in_topic = topic_event_ids(bootstrap, topic.records)
    assert len(in_topic) == len(set(in_topic)) == topic.records
    topic_passes = pass_counts(ends, in_topic)
    assert topic_passes[0] == topic_passes[1] == SAMPLE_LINES
    assert raw_event_counts(other_lake) == (SAMPLE_LINES, SAMPLE_LINES)  # untouched by the loop


def lake_event_ids(lake: Path) -> list[str]:
    files = [str(p) for p in (lake / "clickstream_events").rglob("*.parquet") if not p.name.startswith(".")]
    return [row[0] for row in duckdb.sql(f"SELECT event_id FROM read_parquet({files})").fetchall()]


def pass_counts(ends: dict[str, str], event_ids: list[str]) -> collections.Counter:
    return collections.Counter(pass_of(event_id, ends) for event_id in event_ids)


def first_pass_logo_views(lake: Path) -> int:
    """Views of /settings/logo by people in hour 00 of 2019-01-22 among the first pass's events
    (those whose id is the line's own: pass 1 reaches into hour 00 too, from 00:40:44)."""
    files = [str(p) for p in (lake / "clickstream_events").rglob("*.parquet") if not p.name.startswith(".")]
    ends = id_ends([e["event_id"] for e in sample_events()])
    rows = duckdb.sql(
        f"SELECT event_id FROM read_parquet({files}, hive_partitioning = true) "
        "WHERE dt = DATE '2019-01-22' AND hour = 0 AND page = '/settings/logo' AND NOT is_bot"
    ).fetchall()
    return sum(1 for (event_id,) in rows if pass_of(event_id, ends) == 0)


def topic_event_ids(bootstrap: str, expected: int) -> list[str]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    ids: list[str] = []
    try:
        tps = [
            TopicPartition(CLICKSTREAM_EVENTS, p)
            for p in sorted(consumer.partitions_for_topic(CLICKSTREAM_EVENTS) or ())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 120
        while len(ids) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                ids.extend(orjson.loads(r.value)["event_id"] for r in records)
    finally:
        consumer.close()
    assert len(ids) == expected, f"read {len(ids)} of {expected} records of {CLICKSTREAM_EVENTS} in 120 s"
    return ids
