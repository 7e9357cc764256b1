"""Delivery streams against the real broker: exact rows, idle flush, error output, write failures,
rebalances and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

import sinks.stream
from core.errors import SinkWriteError
from core.settings import Settings, load_settings
from sinks.config import DeliveryStreamConfig, parse_config
from sinks.stream import DeliveryStream
from tests.integration.sinks_support import (
    error_rows,
    event,
    lake_rows,
    produce,
    sink_command,
    unique_group,
    wait_until,
    write_clickstream_config,
)

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "tidelake.cli"]


def _settings(bootstrap: str, lake: Path) -> Settings:
    return load_settings(kafka={"bootstrap_servers": bootstrap}, lake={"root": lake})


def _config(topic: str, **extra: object) -> DeliveryStreamConfig:
    data = {
        "name": "test-events",
        "topics": [topic],
        "dataset": "clickstream_events",
        "schema": "clickstream",
        "group_id": unique_group(),
        "buffer": {"interval_s": 1, "records": 5000},
    }
    data.update(extra)
    return parse_config(data, "test")


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return [consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        consumer.close()


def test_every_event_lands_once_with_exact_counts(kafka_bootstrap: str, make_topic, tmp_path: Path) -> None:
    topic = make_topic(partitions=3)
    produce(kafka_bootstrap, topic, (event(i) for i in range(12_345)))
    lake = tmp_path / "lake"
    summary = DeliveryStream(_config(topic), _settings(kafka_bootstrap, lake)).run(max_idle_s=5)
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (12_345, 12_345)
    assert (summary.records_in, summary.rows_written, summary.error_count, summary.dropped) == (
        12_345,
        12_345,
        0,
        0,
    )
    assert summary.reconciles
    assert error_rows(lake, "clickstream_events") == []
    assert not list((lake / "_sinks").rglob("*.json"))  # every manifest finished
    hours = lake_rows(lake, "clickstream_events", "count(DISTINCT date_trunc('hour', event_time))")[0]
    dirs = {p.parent for p in (lake / "clickstream_events").rglob("*.parquet")}
    assert len(dirs) == hours  # one folder per event hour (dt=/hour=)


def test_idle_interval_flushes_without_further_traffic(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    lake = tmp_path / "lake"
    config = _config(topic, buffer={"interval_s": 1, "records": 1_000_000, "size_mb": 512})
    stream = DeliveryStream(config, _settings(kafka_bootstrap, lake))
    stop = threading.Event()
    runner = threading.Thread(target=stream.run, kwargs={"stop_event": stop}, daemon=True)
    runner.start()
    try:
        produce(kafka_bootstrap, topic, (event(i) for i in range(50)))
        wait_until(
            lambda: lake_rows(lake, "clickstream_events")[0] == 50, 120, "50 rows never became queryable"
        )
        flushed = stream.summary.flushes
        wait_until(
            lambda: flushed["idle"] + flushed["interval"] == 1, 10, "the interval flush was not committed"
        )
        assert stream.summary.flushes["shutdown"] == 0  # delivered while still running
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert lake_rows(lake, "clickstream_events", "count(DISTINCT event_id)") == (50,)


def test_bad_records_land_under_the_error_prefix_and_counts_reconcile(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=1)
    good = [json.dumps(event(i)).encode() for i in range(100)]
    missing_time = {k: v for k, v in event(900).items() if k != "event_time"}
    wrong_type = {**event(901), "status": "OK"}
    bad = [
        b"{this is not json",
        json.dumps(wrong_type).encode(),
        b"\x89PNG\r\n\x1a\n\xff",
        json.dumps(missing_time).encode(),
    ]
    values = good[:50] + bad + good[50:]
    produce(kafka_bootstrap, topic, values)
    lake = tmp_path / "lake"
    summary = DeliveryStream(_config(topic), _settings(kafka_bootstrap, lake)).run(max_idle_s=5)
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (100, 100)
    errors = error_rows(lake, "clickstream_events")
    assert [(e[0], e[2]) for e in errors] == [("format-conversion-failed", o) for o in (50, 51, 52, 53)]
    assert errors[0][3] == "{this is not json"
    assert errors[2][4] == "base64"
    assert "field 'status'" in errors[1][5]
    assert "required field 'event_time'" in errors[3][5]
    assert summary.records_in == 104 == summary.rows_written + summary.error_count + summary.dropped
    assert dict(summary.errors) == {"format-conversion-failed": 4}


def test_a_write_failure_commits_nothing_and_loses_nothing(
    kafka_bootstrap: str, make_topic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, (event(i) for i in range(3000)))
    lake = tmp_path / "lake"
    config = _config(topic, buffer={"interval_s": 1, "records": 1000})
    real_write = sinks.stream.write_parquet
    calls = {"n": 0}

    def failing_write(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SinkWriteError("simulated: disk full")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(sinks.stream, "write_parquet", failing_write)
    with pytest.raises(SinkWriteError, match="disk full"):
        DeliveryStream(config, _settings(kafka_bootstrap, lake)).run(max_idle_s=5)
    assert _committed(kafka_bootstrap, config.consumer_group, topic, 2) == [None, None]
    monkeypatch.setattr(sinks.stream, "write_parquet", real_write)
    summary = DeliveryStream(config, _settings(kafka_bootstrap, lake)).run(max_idle_s=5)
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (3000, 3000)
    assert summary.recovered_flushes >= 1  # the manifest of the failed flush was rolled forward
    assert not list((lake / "_sinks").rglob("*.json"))


def test_two_sinks_in_one_group_flush_before_a_rebalance(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=4)
    lake = tmp_path / "lake"
    config = _config(topic, buffer={"interval_s": 30, "records": 1_000_000})
    settings = _settings(kafka_bootstrap, lake)
    first, second = DeliveryStream(config, settings), DeliveryStream(config, settings)
    stop_first, stop_second = threading.Event(), threading.Event()
    runner = threading.Thread(target=first.run, kwargs={"stop_event": stop_first}, daemon=True)
    joiner = threading.Thread(target=second.run, kwargs={"stop_event": stop_second}, daemon=True)
    runner.start()
    try:
        produce(kafka_bootstrap, topic, (event(i) for i in range(2000)))
        wait_until(lambda: first.summary.records_in == 2000, 120, "the first sink never read the 2000 events")
        joiner.start()
        wait_until(
            lambda: first.summary.flushes["rebalance"] >= 1, 120, "the first sink did not flush on rebalance"
        )
        assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (2000, 2000)
        produce(kafka_bootstrap, topic, (event(i) for i in range(2000, 3000)))
        wait_until(
            lambda: first.summary.records_in + second.summary.records_in >= 3000,
            120,
            "the two sinks never read the last 1000 events",
        )
    finally:
        stop_first.set()
        stop_second.set()
        runner.join(60)
        if joiner.is_alive():
            joiner.join(60)
    assert not runner.is_alive() and not joiner.is_alive()
    summaries = (first.summary.as_dict(), second.summary.as_dict())
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (3000, 3000), (
        summaries
    )
    # Records read twice (a rebalance commit that landed after the new owner fetched) are rewritten
    # under the same names by the new owner's roll-forward, never added: the lake count above holds.
    assert first.summary.reconciles and second.summary.reconciles, summaries


def test_cli_runs_a_config_file_and_prints_a_json_summary(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, [*(event(i) for i in range(500)), b"nope"])
    config = write_clickstream_config(
        tmp_path / "stream.toml",
        "cli-test",
        topic,
        '[buffer]\ninterval_s = 1\n[parquet]\ncompression = "zstd"\n',
    )
    lake = tmp_path / "lake"
    board = tmp_path / "run"
    done = subprocess.run(
        sink_command(config, lake, kafka_bootstrap, "--max-idle", "5"),
        env={**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(board)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["records_in"], summary["rows_written"], summary["errors"], summary["reconciles"]) == (
        501,
        500,
        1,
        True,
    )
    assert lake_rows(lake, "clickstream_events") == (500,)
    status = json.loads((board / "sink.cli-test.json").read_text())  # what `tidelake status` shows
    assert (status["kind"], status["metrics"]["rows_written"], status["metrics"]["errors"]) == (
        "sink",
        500,
        1,
    )


def test_cli_refuses_a_bad_config_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('name = "x"\ntopics = ["t"]\nprefix = "!{nope:x}/"\n')
    done = subprocess.run(
        [*CLI, "sink", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown namespace 'nope'" in done.stderr


class _HandClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_max_idle_flushes_what_is_buffered_and_stops_without_waiting_for_the_interval(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    """`--max-idle N`: N seconds (of the stream's clock) without a new record, then the buffer is
    delivered and the stream stops, although its 900 s interval is far from due (issue 13: a sink
    with `--max-idle 2` ran for 60 s)."""
    topic = make_topic(partitions=2)
    lake = tmp_path / "lake"
    config = _config(topic, buffer={"interval_s": 900, "records": 1_000_000, "size_mb": 512})
    clock = _HandClock()
    stream = DeliveryStream(config, _settings(kafka_bootstrap, lake), clock=clock)
    produce(kafka_bootstrap, topic, (event(i) for i in range(300)))
    done: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: done.setdefault("summary", stream.run(max_idle_s=2)), daemon=True
    )
    runner.start()
    try:
        wait_until(lambda: stream.summary.records_in == 300, 120, "the sink never read the 300 events")
        clock.advance(1.9)
        runner.join(2)  # real seconds: with the clock short of 2 s it goes on
        assert runner.is_alive() and stream.summary.rows_written == 0
        clock.advance(0.1)
        runner.join(60)
    finally:
        if runner.is_alive():
            stream._stop.set()  # type: ignore[union-attr]
            runner.join(30)
    assert not runner.is_alive()
    summary = stream.summary.as_dict()
    assert (summary["records_in"], summary["rows_written"], summary["buffered"], summary["flushes"]) == (
        300,
        300,
        0,
        {"shutdown": 1},
    )
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (300, 300)
