"""The Flink runtime against the real broker: a job on PyFlink's mini-cluster writes exactly the rows
DuckDB computes, and a job killed with kill -9 mid-stream and restarted from its retained checkpoint
writes each final row once (read_committed: no duplicates, no gaps).

Flink closes an event-time window only when the watermark passes its end; it does not close windows
on an idle source as tidelake's engine does. So every test ends its sample with one event per
partition a day after the last window (`FINAL`): the watermark then passes every window of the
sample, and the windows of those final events stay open and are never written.

The job is page-views-1m compiled by `compile_flink_sql`, run through the same runner and settings
as `tidelake stream run --runtime flink`, in a process group of its own so that the test can kill
the runner and its JVM at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from core.admin import create_topics
from core.errors import ConfigError
from core.topics import TopicSpec
from stream_apps.catalog import resolve_spec
from stream_apps.flink_runtime import FlinkOptions, job_file, job_settings, latest_checkpoint, runner_command
from stream_apps.flink_sql import compile_flink_sql
from stream_apps.spec import AppSpec
from tests.stream_events import clickstream
from tests.stream_kafka import TopicReader, produce
from tests.stream_oracle import expected_rows, row_sort_key
from tidelake.flink_install import FlinkInstall, installed

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: One per partition, a day after the sample: its watermark closes every window of the sample.
FINAL = {"event_time": "2019-01-23T00:00:00.000000Z", "page": "/final", "visitor_id": "final"}


@pytest.fixture(scope="module")
def flink() -> FlinkInstall:
    """The Flink runtime; its absence FAILS the tests (make install fetches it), never skips them."""
    try:
        return installed()
    except ConfigError as exc:
        pytest.fail(f"{exc}; run make install", pytrace=False)


def produce_final(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="zstd")
    try:
        for partition in range(PARTITIONS):
            producer.send(topic, json.dumps(FINAL).encode(), key=b"final", partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close()


def start_runner(
    flink: FlinkInstall, spec: AppSpec, bootstrap: str, state_dir: Path
) -> subprocess.Popen[str]:
    """The runner as the Flink runtime starts it (same settings and checkpoint folder), in a process
    group of its own with its JVM, so that the test can kill -9 both."""
    settings = job_settings(FlinkOptions(flink.python, flink.connector_jar), state_dir, spec.name, PARTITIONS)
    path = state_dir / f"{spec.name}-job.json"
    state_dir.mkdir(parents=True, exist_ok=True)
    script = compile_flink_sql(spec, bootstrap_servers=bootstrap, checkpoint_interval_s=1.0)
    path.write_text(json.dumps(job_file(script.statements, spec.name, settings)))
    log = (state_dir / "flink.log").open("a")
    try:
        return subprocess.Popen(runner_command(flink.python, path), stdout=subprocess.PIPE, stderr=log,
                                text=True, start_new_session=True)  # fmt: skip
    finally:
        log.close()


def stop_runner(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """SIGTERM (the runner cancels the job), then the events it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.stdout is not None
    events = [json.loads(line) for line in process.stdout.read().splitlines() if line.startswith("{")]
    process.stdout.close()
    return events


def app_spec(source: str, name: str) -> AppSpec:
    return dataclasses.replace(
        resolve_spec("page-views-1m"), name=name, source=source, sink_topic=f"{source}.out"
    )


def test_kill_9_mid_stream_and_restart_from_the_checkpoint_writes_each_final_row_once(
    flink, kafka_bootstrap, make_topic, tmp_path
) -> None:
    """Run 1 reads the first half and is killed with kill -9 (runner and JVM) once its first rows are
    committed; run 2 restores the newest retained checkpoint and reads the rest. Read committed, the
    rows are exactly DuckDB's: the rows of run 1's open transactions were aborted, none is missing."""
    source = make_topic(partitions=PARTITIONS)
    spec = app_spec(source, "flink-drill")
    events = clickstream(600, seed=12, spread_s=1.0)
    expected = expected_rows(events, spec)
    produce(kafka_bootstrap, source, events[:300], compression_type="zstd")
    create_topics(kafka_bootstrap, [TopicSpec(spec.sink_topic, PARTITIONS)])
    state = tmp_path / "state"
    reader = TopicReader(kafka_bootstrap, spec.sink_topic)
    first = start_runner(flink, spec, kafka_bootstrap, state)
    try:
        reader.wait_until(lambda rows: len(rows) >= 1, 600, "run 1's first committed rows", first)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # kill -9, runner and JVM at once
        first.wait(timeout=30)
        assert first.stdout is not None
        first.stdout.close()
    killed_with = first.returncode
    restored_from = latest_checkpoint(state / spec.name / "flink-checkpoints")
    produce(kafka_bootstrap, source, events[300:], compression_type="zstd")
    produce_final(kafka_bootstrap, source)
    second = start_runner(flink, spec, kafka_bootstrap, state)
    try:
        rows = reader.wait_until(
            lambda rows: len(rows) >= len(expected), 240, f"{len(expected)} rows", second
        )
        reader.poll()  # a duplicate would come right behind
        rows = reader.values()
    finally:
        lines = stop_runner(second)
        reader.close()
    assert killed_with == -signal.SIGKILL
    assert restored_from is not None  # run 2 resumed from run 1's checkpoint, not from the start
    duplicates = len(rows) - len({(r["page"], r["window_start"]) for r in rows})
    assert duplicates == 0
    assert sorted(rows, key=row_sort_key) == expected  # every window once: no duplicates, no gaps
    assert sum(r["count"] for r in rows) == len(events)
    assert [e["event"] for e in lines][:2] == ["submitted", "state"]
    assert lines[-1]["event"] == "cancelled"
