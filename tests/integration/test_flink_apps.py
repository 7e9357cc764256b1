"""Every shipped app that Flink SQL can express (`compile_flink_sql`; the RANDOM_CUT_FOREST apps are
refused) runs on Apache Flink over a replayed sample and writes exactly the rows DuckDB computes,
the rows the default runtime writes (tests/integration/test_stream_apps.py). A KDA SQL app is
compared with its TOML twin's rows, as tests/integration/test_kda_sql_apps.py does.

Flink closes an event-time window only when the watermark passes its end; it does not close windows
on an idle source as tidelake's engine does. So each sample ends with one event per partition a day
after its last window (`final_events`): the watermark then passes every window of the sample, and
the windows of the final events stay open and are never written. The apps' idle timeout (which in
Flink only lets the watermark go on without an idle partition) is raised to 60 s so that a JVM
slow to start reading one partition on a loaded machine cannot make another partition's events late.
The events are written in zstd batches, as `tidelake replay` writes them: Flink's Kafka connector
reads those only with zstd-jni beside it (tidelake/resources/flink-pom.xml).

`tidelake stream run page-views-1m --runtime flink` runs through the CLI (and `tidelake status`
shows it: job state and the lag of its group); the other apps run as jobs of one mini-cluster JVM
through the same runner and settings, so the file starts two JVMs, not one per app.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from core.admin import create_topics
from core.errors import ConfigError
from core.settings import load_settings
from core.topics import TopicSpec
from stream_apps.catalog import resolve_spec, shipped_specs, shipped_sql
from stream_apps.flink_runtime import FlinkOptions, flink_group, job_settings, runner_command
from stream_apps.flink_sql import FlinkUnsupported, compile_flink_sql
from stream_apps.kda_sql.apps import sql_app_spec
from stream_apps.spec import AppSpec
from tests.stream_events import clickstream
from tests.stream_kafka import TopicReader, produce, stream_run, write_spec
from tests.stream_oracle import expected_rows, row_sort_key
from tidelake.flink_install import FlinkInstall, installed
from tidelake.status import collect_status

pytestmark = pytest.mark.integration

PARTITIONS = 4
IDLE_TIMEOUT_US = 60_000_000
SAMPLE = 400


@pytest.fixture(scope="module")
def flink() -> FlinkInstall:
    """The Flink runtime; its absence FAILS the tests (make install fetches it), never skips them."""
    try:
        return installed()
    except ConfigError as exc:
        pytest.fail(f"{exc}; run make install", pytrace=False)


def sample(seed: int) -> list[dict[str, Any]]:
    return clickstream(SAMPLE, seed=seed, spread_s=2.0)


def produce_final(bootstrap: str, topic: str) -> None:
    """One event per partition, a day after the sample (module docstring)."""
    final = {**clickstream(1)[0], "event_id": "final", "event_time": "2019-01-23T00:00:00.000000Z"}
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="zstd")
    try:
        for partition in range(PARTITIONS):
            producer.send(topic, json.dumps(final).encode(), key=b"final", partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close()


def replayed(kafka_bootstrap: str, make_topic: Any, spec: AppSpec, seed: int) -> tuple[AppSpec, list[dict]]:
    """`spec` reading a topic of its own that holds the sample and the final events."""
    source = make_topic(partitions=PARTITIONS)
    events = sample(seed)
    produce(kafka_bootstrap, source, events, compression_type="zstd")
    produce_final(kafka_bootstrap, source)
    moved = dataclasses.replace(
        spec, source=source, sink_topic=f"{source}.out", idle_timeout_us=IDLE_TIMEOUT_US
    )
    return moved, events


def shipped_apps() -> dict[str, tuple[AppSpec, AppSpec]]:
    """{name: (the app, the TOML spec whose rows it must write)} for TOML specs and `<name>.sql`."""
    specs = shipped_specs()
    apps = {name: (spec, spec) for name, spec in specs.items()}
    apps.update({f"{name}.sql": (sql_app_spec(path), specs[name]) for name, path in shipped_sql().items()})
    return apps


def expressible() -> dict[str, tuple[AppSpec, AppSpec]]:
    apps = {}
    for name, (spec, twin) in shipped_apps().items():
        try:
            compile_flink_sql(spec, bootstrap_servers="127.0.0.1:9092")
        except FlinkUnsupported:
            continue
        apps[name] = (spec, twin)
    return apps


def test_the_apps_flink_sql_cannot_express_are_the_random_cut_forest_ones() -> None:
    assert set(shipped_apps()) - set(expressible()) == {"page-view-anomalies", "page-view-anomalies.sql"}


def test_page_views_1m_on_flink_through_the_cli_equals_duckdb_and_shows_in_status(
    flink, kafka_bootstrap, make_topic, tmp_path: Path
) -> None:
    spec, events = replayed(kafka_bootstrap, make_topic, resolve_spec("page-views-1m"), seed=31)
    expected = expected_rows(events, resolve_spec("page-views-1m"))
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    env = {
        "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "run"),
        "TIDELAKE_STREAM__CHECKPOINT_INTERVAL_S": "1",
    }
    settings = load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap}, runtime={"state_dir": tmp_path / "run"}
    )
    group = flink_group(spec.name)
    with stream_run(
        kafka_bootstrap, tmp_path / "state", str(spec_file), "--runtime", "flink", env=env
    ) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 300, f"{len(expected)} rows", worker)

        def caught_up() -> dict[str, Any] | None:
            status = collect_status(settings)
            lag = {g.group: g.lag for g in status.groups}
            shown = {p.name: p for p in status.processes if p.kind == "stream"}
            entry = shown.get(spec.name)
            if lag.get(group) == 0 and entry is not None and entry.metrics.get("lag") == 0:
                return entry.metrics
            return None

        metrics = wait_for_value(caught_up, 120, f"group {group} at lag 0 on the status board", worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=120) == 0, worker.stderr.read()  # type: ignore[union-attr]
        summary = json.loads(worker.stdout.read().strip().splitlines()[-1])  # type: ignore[union-attr]
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected  # one final row per window, no duplicates
    assert (metrics["runtime"], metrics["job_state"], metrics["state"]) == ("flink", "RUNNING", "running")
    assert metrics["events_in"] == SAMPLE + PARTITIONS  # checkpointed source offsets
    assert (summary["state"], summary["job_state"], summary["lag"]) == ("stopped", "CANCELED", 0)
    assert len(summary["job_id"]) == 32


def wait_for_value(probe: Any, timeout_s: float, what: str, process: subprocess.Popen[str]) -> Any:
    """Poll `probe` every 0.5 s until it gives a value; fail after `timeout_s` or if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr is not None else ""
            raise AssertionError(f"worker exited ({process.returncode}) before {what}: {stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.5)


def test_every_other_expressible_app_on_flink_equals_duckdb(
    flink, kafka_bootstrap, make_topic, tmp_path
) -> None:
    """All in one mini-cluster JVM: one job per app, each reading a topic of its own."""
    apps = {name: pair for name, pair in expressible().items() if name != "page-views-1m"}
    scripts = []
    expected: dict[str, list[dict]] = {}
    sinks: dict[str, str] = {}
    for seed, (name, (spec, twin)) in enumerate(sorted(apps.items()), start=40):
        moved, events = replayed(kafka_bootstrap, make_topic, spec, seed)
        create_topics(kafka_bootstrap, [TopicSpec(moved.sink_topic, PARTITIONS)])
        script = compile_flink_sql(moved, bootstrap_servers=kafka_bootstrap, checkpoint_interval_s=1.0)
        scripts.append({"app": name, "statements": list(script.statements)})
        expected[name] = expected_rows(events, twin)
        sinks[name] = moved.sink_topic
    state = tmp_path / "state"
    state.mkdir()
    settings = job_settings(FlinkOptions(flink.python, flink.connector_jar), state, "apps", PARTITIONS)
    job = state / "apps-job.json"
    job.write_text(json.dumps({"scripts": scripts, "settings": settings}))
    with (state / "flink.log").open("a") as log:
        runner = subprocess.Popen(runner_command(flink.python, job), stdout=subprocess.PIPE, stderr=log, text=True,
                                  start_new_session=True)  # fmt: skip
    got: dict[str, list[dict]] = {}
    try:
        for name in sorted(apps):
            reader = TopicReader(kafka_bootstrap, sinks[name])
            want = len(expected[name])

            def enough(rows: list[dict], want: int = want) -> bool:
                return len(rows) >= want

            reader.wait_until(enough, 300, f"{want} rows of {name}", runner)
            reader.poll()  # a duplicate would come right behind
            got[name] = reader.values()
            reader.close()
    finally:
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(timeout=120)
        output = runner.stdout.read().splitlines()  # type: ignore[union-attr]
        runner.stdout.close()  # type: ignore[union-attr]
    # the JVM shares the runner's stdout: log4j's own errors (a Kafka client thread outliving its
    # cancelled job's class loader) can come between the runner's JSON lines
    lines = [json.loads(line) for line in output if line.startswith("{")]
    assert {name: sorted(rows, key=row_sort_key) for name, rows in got.items()} == expected
    assert min(len(rows) for rows in expected.values()) >= 3  # top-pages-5m: three 5-minute windows
    assert sorted(e["app"] for e in lines if e["event"] == "cancelled") == sorted(apps)
    assert code == 0
