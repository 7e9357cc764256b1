"""Stream apps against the real broker, on both runtimes (`tidelake stream run`, and with
`--runtime faust`): final rows equal DuckDB's GROUP BY with 4 partitions, after kill -9 and restart
the last row per window, idle close, late and bad events routed and counted, no duplicates across a
clean restart; a state folder carries over from one runtime to the other."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from core.dead_letters import (
    BAD_EVENT_TIME,
    ERROR_PROCESS,
    ERROR_TYPE,
    MALFORMED_RECORD,
    stream_app_process,
)
from core.topics import LATE_EVENTS, dlq_topic
from tests.stream_events import clickstream
from tests.stream_kafka import (
    RUNTIMES,
    TopicReader,
    make_spec,
    produce,
    produce_raw,
    stop_and_summary,
    worker_process,
    write_spec,
)
from tests.stream_oracle import expected_rows, last_per_window, row_sort_key

pytestmark = pytest.mark.integration

#: The extra arguments of `tidelake stream run` per runtime.


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize(
    "window", ["tumbling:60s", "hopping:5m/1m", "sliding:60s", "session:20s", "stagger:60s"]
)
def test_final_rows_equal_duckdb_with_four_partitions(
    window, runtime, kafka_bootstrap, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, window, f"{runtime}-{window.split(':')[0]}")
    events = clickstream(3000, seed=21)
    expected = expected_rows(events, spec)
    produce(kafka_bootstrap, source, events)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        summary = stop_and_summary(worker)
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected  # one final row per window, no duplicates
    assert summary["events_in"] == 3000
    assert summary["windowed"] == 3000
    assert summary["late"] == 0
    assert summary["windows_closed"] == len(expected)
    assert summary["rows_out"] == len(expected)
    assert (summary["rows_pending"], summary["state"]) == (0, "stopped")  # the run ended: final


#: The crash drill: run k reads part k of the events and dies at DRILL[k] - None is `kill -9` from
#: outside as soon as rows appear; a named point makes the worker SIGKILL itself there, on its first
#: checkpoint that carries rows (TIDELAKE_STREAM_CRASH_AT). A last run finishes the job.
DRILL = (None, "after-send", "after-offsets", "after-snapshot", "after-commit", "after-confirm")
BAD_RECORDS = [b"not json", b'{"page": "/", "event_time": "yesterday"}']


def test_kill_9_at_every_checkpoint_moment_leaves_one_final_row_per_window(
    runtime, kafka_bootstrap, make_topic, tmp_path
) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", f"{runtime}-drill", aggregates=["count", "sum:bytes"])
    events = clickstream(6000, seed=4, spread_s=0.5)
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    part = len(events) // len(DRILL)
    deaths = []
    assert DRILL[0] is None
    for k, point in enumerate(DRILL):
        produce(kafka_bootstrap, source, events[k * part : (k + 1) * part])
        if k == 2:
            produce_raw(kafka_bootstrap, source, BAD_RECORDS)
        env = {"TIDELAKE_STREAM_CRASH_AT": point} if point else {}
        with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime],
                            env_extra=env) as worker:  # fmt: skip
            if point is None:  # the first run: it creates the output topic
                reader = TopicReader(kafka_bootstrap, spec.sink_topic)
                reader.wait_until(lambda r: len(r) >= 1, 120, "the first rows", worker)
                worker.send_signal(signal.SIGKILL)
            deaths.append(worker.wait(timeout=120))
    produce(kafka_bootstrap, source, events[len(DRILL) * part :])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        reader.wait_until(
            lambda r: len(last_per_window(r, spec)) >= len(expected), 180, f"{len(expected)} windows", worker
        )
        summary = stop_and_summary(worker)
    reader.poll()
    rows = reader.values()
    reader.close()
    dlq = TopicReader(kafka_bootstrap, dlq_topic(source))
    dlq.wait_until(lambda r: len(r) >= len(BAD_RECORDS), 30, "the bad records on the DLQ")
    dlq.poll()
    assert deaths == [-signal.SIGKILL] * len(DRILL)  # every run died where it was meant to
    copies = len(rows) - len(expected)
    assert copies == 0, f"{copies} duplicate rows"
    assert sorted(rows, key=row_sort_key) == expected  # exactly one final row per window, read committed
    assert sum(row["count"] for row in rows) == len(events)
    assert [m.value for m in dlq.messages] == BAD_RECORDS  # side outputs once each, too
    dlq.close()
    assert summary["events_in"] == len(events) + len(BAD_RECORDS)  # every event counted once
    assert (summary["errors"], summary["late"]) == (len(BAD_RECORDS), 0)
    assert summary["rows_out"] == len(expected)


def test_windows_close_on_idle_without_new_events(runtime, kafka_bootstrap, make_topic, tmp_path) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "session:30m", f"{runtime}-idle", key_field="visitor_id", aggregates=["count"],
                     idle_timeout="1s")  # fmt: skip
    events = clickstream(200, seed=8)
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        produce(kafka_bootstrap, source, events)
        # 30-minute sessions over ~7 minutes of events: only idleness can close them
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 90, "sessions closed by idleness", worker)
        summary = stop_and_summary(worker)
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected
    assert summary["windows_open"] == 0
    assert summary["windows_closed"] == len(expected)


def test_late_and_bad_events_are_routed_and_counted(runtime, kafka_bootstrap, make_topic, tmp_path) -> None:
    source = make_topic(partitions=4)
    app = f"{runtime}-late"
    spec = make_spec(source, "tumbling:60s", app, aggregates=["count"])
    events = clickstream(300, seed=2)
    late = [dict(e, event_id=f"late{i}") for i, e in enumerate(events[:3])]
    fresh = clickstream(1, seed=99)[0]
    fresh["event_time"] = "2019-01-22T06:00:00.000000Z"
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        rows_reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        produce(kafka_bootstrap, source, events)
        rows_reader.wait_until(lambda r: len(r) >= len(expected), 90, "all windows closed", worker)
        produce(kafka_bootstrap, source, [*late, fresh])
        produce_raw(kafka_bootstrap, source, [b"not json", b'{"page": "/", "event_time": "yesterday"}'])
        late_reader = TopicReader(kafka_bootstrap, LATE_EVENTS)
        mine = late_reader.wait_until(
            lambda r: sum(1 for x in r if x["topic"] == source) >= 3, 60, "3 late events", worker
        )
        rows = rows_reader.wait_until(lambda r: len(r) >= len(expected) + 1, 60, "the fresh window", worker)
        dlq = TopicReader(kafka_bootstrap, dlq_topic(source))
        dlq.wait_until(lambda r: len(dlq.messages) >= 2, 60, "2 bad records on the DLQ", worker)
        summary = stop_and_summary(worker)
    late_records = [x for x in mine if x["topic"] == source]
    assert sorted(x["event"]["event_id"] for x in late_records) == ["late0", "late1", "late2"]
    assert {x["app"] for x in late_records} == {app}
    assert max(r["window_start"] for r in rows) == "2019-01-22T06:00:00.000000Z"
    assert len(rows) == len(expected) + 1
    assert summary["late"] == 3
    assert summary["errors"] == 2
    assert summary["events_in"] == 300 + 4 + 2
    assert summary["windowed"] == 301
    headers = [dict(m.headers) for m in dlq.messages]
    assert [m.value for m in dlq.messages] == [b"not json", b'{"page": "/", "event_time": "yesterday"}']
    assert [h[ERROR_TYPE] for h in headers] == [MALFORMED_RECORD.encode(), BAD_EVENT_TIME.encode()]
    assert all(h[ERROR_PROCESS] == stream_app_process(app).encode() for h in headers)
    for reader in (rows_reader, late_reader, dlq):
        reader.close()


def test_stop_and_restart_writes_every_final_row_once(runtime, kafka_bootstrap, make_topic, tmp_path) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", f"{runtime}-restart", aggregates=["count", "top:2:page"])
    events = clickstream(2000, seed=6)
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    produce(kafka_bootstrap, source, events[:1000])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= 1, 90, "the first rows", worker)
        stop_and_summary(worker)
    produce(kafka_bootstrap, source, events[1000:])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        second = stop_and_summary(worker)
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected  # no duplicates across the restart
    assert second["events_in"] == 2000  # counters live in the snapshot: the restart read only the rest


def test_switching_from_aiokafka_to_faust_on_one_state_folder_continues_the_windows(
    kafka_bootstrap, make_topic, tmp_path
) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", "faust-switch", aggregates=["count", "sum:bytes"])
    events = clickstream(2000, seed=12)
    expected = expected_rows(events, spec)
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    produce(kafka_bootstrap, source, events[:1000])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state") as worker:  # aiokafka runtime
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= 1, 60, "the first rows", worker)
        stop_and_summary(worker)
    produce(kafka_bootstrap, source, events[1000:])
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES["faust"]) as worker:
        reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        second = stop_and_summary(worker)
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected
    assert second["events_in"] == 2000


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
