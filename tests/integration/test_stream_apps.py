"""Stream apps against the real broker: final rows equal DuckDB's GROUP BY, with 4 partitions,
after kill -9 and restart, with idle close, and with late and bad events routed and counted."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from core.topics import LATE_EVENTS, dlq_topic
from tests.stream_events import clickstream
from tests.stream_kafka import (
    TopicReader,
    make_spec,
    produce,
    produce_raw,
    worker_process,
    write_spec,
)
from tests.stream_oracle import expected_rows, last_per_window, row_sort_key

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "window", ["tumbling:60s", "hopping:5m/1m", "sliding:60s", "session:20s", "stagger:60s"]
)
def test_final_rows_equal_duckdb_with_four_partitions(
    window, kafka_bootstrap, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, window, "it-" + window.split(":")[0])
    events = clickstream(3000, seed=21)
    expected = expected_rows(events, spec)
    produce(kafka_bootstrap, source, events)
    reader = None
    with worker_process(
        write_spec(spec, tmp_path / "spec.toml"), kafka_bootstrap, tmp_path / "state"
    ) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        summary = json.loads(worker.stdout.read().strip().splitlines()[-1])  # type: ignore[union-attr]
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected  # one final row per window, no duplicates
    assert summary["events_in"] == 3000
    assert summary["windowed"] == 3000
    assert summary["late"] == 0
    assert summary["windows_closed"] == len(expected)


def test_kill_9_mid_stream_and_restart_gives_identical_final_rows(
    kafka_bootstrap, make_topic, tmp_path
) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", "it-kill", filters=["is_bot = false"])
    events = clickstream(40_000, seed=4, spread_s=0.05)
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    produce(kafka_bootstrap, source, events[:30_000])
    reader = None
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state") as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= 1, 120, "the first rows", worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    first_run = len(reader.values())
    produce(kafka_bootstrap, source, events[30_000:])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state") as worker:
        reader.wait_until(
            lambda r: len(last_per_window(r, spec)) >= len(expected), 180, f"{len(expected)} windows", worker
        )
    rows = reader.values()
    reader.close()
    assert 0 < first_run < len(expected)
    assert last_per_window(rows, spec) == expected
    by_window: dict[tuple, list[dict]] = {}
    for row in rows:
        by_window.setdefault((row["page"], row["window_start"]), []).append(row)
    assert all(all(copy == copies[0] for copy in copies) for copies in by_window.values())  # duplicates agree


def test_windows_close_on_idle_without_new_events(kafka_bootstrap, make_topic, tmp_path) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "session:30m", "it-idle", key_field="visitor_id", aggregates=["count"],
                     idle_timeout="1s")  # fmt: skip
    events = clickstream(200, seed=8)
    expected = expected_rows(events, spec)
    with worker_process(
        write_spec(spec, tmp_path / "spec.toml"), kafka_bootstrap, tmp_path / "state"
    ) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        produce(kafka_bootstrap, source, events)
        # the 30-minute sessions can only close by idleness: the watermark never passes their end
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 60, "sessions closed by idleness", worker)
        reader.close()
    assert sorted(rows, key=row_sort_key) == expected


def test_late_and_bad_events_are_routed_and_counted(kafka_bootstrap, make_topic, tmp_path) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", "it-late", aggregates=["count"])
    events = clickstream(300, seed=2)
    late = [dict(e, event_id=f"late{i}") for i, e in enumerate(events[:3])]
    fresh = clickstream(1, seed=99)[0]
    fresh["event_time"] = "2019-01-22T06:00:00.000000Z"
    expected = expected_rows(events, spec)
    with worker_process(
        write_spec(spec, tmp_path / "spec.toml"), kafka_bootstrap, tmp_path / "state"
    ) as worker:
        rows_reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        produce(kafka_bootstrap, source, events)
        rows_reader.wait_until(lambda r: len(r) >= len(expected), 60, "all windows closed", worker)
        produce(kafka_bootstrap, source, [*late, fresh])
        produce_raw(kafka_bootstrap, source, [b"not json", b'{"page": "/", "event_time": "yesterday"}'])
        late_reader = TopicReader(kafka_bootstrap, LATE_EVENTS)
        mine = late_reader.wait_until(
            lambda r: sum(1 for x in r if x["topic"] == source) >= 3, 60, "3 late events", worker
        )
        rows = rows_reader.wait_until(lambda r: len(r) >= len(expected) + 1, 60, "the fresh window", worker)
        dlq = TopicReader(kafka_bootstrap, dlq_topic(source))
        dlq.wait_until(lambda r: len(dlq.messages) >= 2, 60, "2 bad records on the DLQ", worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        summary = json.loads(worker.stdout.read().strip().splitlines()[-1])  # type: ignore[union-attr]
    late_records = [x for x in mine if x["topic"] == source]
    assert sorted(x["event"]["event_id"] for x in late_records) == ["late0", "late1", "late2"]
    assert {x["app"] for x in late_records} == {"it-late"}
    assert max(r["window_start"] for r in rows) == "2019-01-22T06:00:00.000000Z"
    assert len(rows) == len(expected) + 1
    assert summary["late"] == 3
    assert summary["errors"] == 2
    assert summary["events_in"] == 300 + 4 + 2
    assert summary["windowed"] == 301
    headers = [dict(m.headers) for m in dlq.messages]
    assert [m.value for m in dlq.messages] == [b"not json", b'{"page": "/", "event_time": "yesterday"}']
    assert all(h["error_type"] == b"processing-failed" and h["app"] == b"it-late" for h in headers)
    for reader in (rows_reader, late_reader, dlq):
        reader.close()


def test_stop_and_restart_writes_every_final_row_once(kafka_bootstrap, make_topic, tmp_path) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", "it-restart", aggregates=["count", "top:2:page"])
    events = clickstream(2000, seed=6)
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    produce(kafka_bootstrap, source, events[:1000])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state") as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= 1, 60, "the first rows", worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    produce(kafka_bootstrap, source, events[1000:])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state") as worker:
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected  # no duplicates across the restart


def test_state_from_a_deleted_and_recreated_topic_is_refused(kafka_bootstrap, make_topic, tmp_path) -> None:
    """Resuming from offsets past the end of a recreated topic would call every new event late."""
    import subprocess
    import sys
    import time

    from kafka import KafkaAdminClient

    from core.admin import create_topics, describe_topics
    from core.topics import TopicSpec

    source = make_topic(partitions=1)
    spec_file = write_spec(make_spec(source, "tumbling:60s", "recreated"), tmp_path / "app.toml")

    def run(stop_after: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tidelake.cli", "stream", "run", str(spec_file), "--state-dir", str(tmp_path / "state"),
             "--stop-after", str(stop_after), "--json", "-b", kafka_bootstrap],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    produce(kafka_bootstrap, source, clickstream(50, seed=7))
    first = run(50)
    assert first.returncode == 0, first.stderr
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics([source])
    admin.close()
    deadline = time.monotonic() + 30
    while describe_topics(kafka_bootstrap, [source]):
        assert time.monotonic() < deadline, f"{source} was not deleted within 30 s"
        time.sleep(0.2)
    create_topics(kafka_bootstrap, [TopicSpec(source, 1)])
    produce(kafka_bootstrap, source, clickstream(10, seed=8))
    second = run(10)
    assert second.returncode == 2, second.stderr
    assert f"has read {source}[0] up to offset 50, but the topic now ends at 10" in second.stderr
    assert "--reset" in second.stderr
