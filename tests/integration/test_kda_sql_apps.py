"""KDA SQL programs on the real broker: `tidelake stream run --sql` over 4 partitions. The shipped
`.sql` apps equal their TOML apps (DuckDB over the replayed zanbil sample); a program written as for
AWS (quoted lower-case columns, a pump into DESTINATION_SQL_STREAM, an input schema) equals a DuckDB
query written independently of the compiler, across kill -9 at checkpoint moments, with its one
record that does not fit the schema on the DLQ."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from core.topics import dlq_topic
from producers.parsing import parse_file
from stream_apps.catalog import shipped_specs
from tests.stream_events import clickstream
from tests.stream_kafka import REPO, TopicReader, produce, produce_raw, stop_and_summary
from tests.stream_oracle import expected_rows, row_sort_key

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "zanbil-access-10k" / "access-10k.log"
FAST = {"TIDELAKE_STREAM__TICK_S": "0.2", "TIDELAKE_STREAM__CHECKPOINT_INTERVAL_S": "0.2"}


@contextmanager
def sql_worker(bootstrap: str, state_dir: Path, *args: str,
               env_extra: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`tidelake stream run --sql ...` in a subprocess; stopped (SIGTERM, then SIGKILL) on exit."""
    env = dict(os.environ, **FAST, **(env_extra or {}))
    command = [sys.executable, "-m", "tidelake.cli", "stream", "run", *args, "-b", bootstrap,
               "--state-dir", str(state_dir), "--json"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def replayed_topic(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The zanbil sample replayed once, at full speed, into a fresh 4-partition topic."""
    topic = f"test.kda-sql-samples.{os.getpid()}.{tmp_path_factory.getbasetemp().name}"
    cli = [sys.executable, "-m", "tidelake.cli"]
    subprocess.run([*cli, "topics", "create", topic, "--partitions", "4", "-b", kafka_bootstrap],
                   cwd=REPO, check=True, capture_output=True, timeout=120)  # fmt: skip
    done = subprocess.run([*cli, "replay", str(SAMPLE), "--topic", topic, "--max-speed", "--json", "-b", kafka_bootstrap],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return topic


@pytest.mark.parametrize(
    ("name", "runtime"),
    [("page-views-1m", "aiokafka"), ("error-rate-1m", "aiokafka"), ("page-views-1m", "faust")],
)
def test_shipped_sql_app_over_zanbil_sample_equals_its_toml_app(
    name: str, runtime: str, replayed_topic: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = [record.payload() for record in parse_file(SAMPLE).records]
    toml = dataclasses.replace(shipped_specs()[name], source=replayed_topic)
    expected = expected_rows(events, toml)
    sink = f"{replayed_topic}.sql-{name}-{runtime}"
    with sql_worker(kafka_bootstrap, tmp_path / "state", "--sql", name, "--source", replayed_topic,
                    "--sink-topic", sink, "--runtime", runtime) as worker:  # fmt: skip
        reader = TopicReader(kafka_bootstrap, sink)
        rows = reader.wait_until(
            lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows of {name}", worker
        )
        reader.close()
    assert len(expected) > 40  # the sample spans 41 minutes
    assert sorted(rows, key=row_sort_key) == expected


#: A program as written for AWS: quoted lower-case columns, an input schema's columns, a pump into
#: DESTINATION_SQL_STREAM; composite key, WHERE, HAVING, CASE, COUNT(DISTINCT), SUM, MIN, AVG.
APP = """
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "page" VARCHAR(32), "status_class" VARCHAR(8), "window_start" TIMESTAMP, "views" BIGINT,
    "visitors" BIGINT, "total_bytes" BIGINT, "smallest" INTEGER, "avg_bytes" DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "page",
           CASE WHEN "status" >= 400 THEN 'error' ELSE 'ok' END,
           FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE),
           COUNT(*), COUNT(DISTINCT "visitor_id"), SUM("bytes"), MIN("bytes"), AVG("bytes")
    FROM "SOURCE_SQL_STREAM_001"
    WHERE "is_bot" = FALSE AND "page" <> '/login'
    GROUP BY "page", CASE WHEN "status" >= 400 THEN 'error' ELSE 'ok' END,
             FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE)
    HAVING COUNT(*) > 1;
"""
SCHEMA = {"RecordColumns": [
    {"Name": "page", "SqlType": "VARCHAR(32)", "Mapping": "$.page"},
    {"Name": "status", "SqlType": "INTEGER", "Mapping": "$.status"},
    {"Name": "visitor_id", "SqlType": "VARCHAR(16)", "Mapping": "$.visitor_id"},
    {"Name": "bytes", "SqlType": "BIGINT", "Mapping": "$.bytes"},
    {"Name": "is_bot", "SqlType": "BOOLEAN", "Mapping": "$.is_bot"},
]}  # fmt: skip
ORACLE = """
SELECT page, CASE WHEN status >= 400 THEN 'error' ELSE 'ok' END AS status_class,
       strftime(time_bucket(INTERVAL 1 MINUTE, CAST(event_time AS TIMESTAMPTZ)), '%Y-%m-%dT%H:%M:%S.%fZ') AS window_start,
       count(*) AS views, count(DISTINCT visitor_id) AS visitors, sum(bytes) AS total_bytes,
       min(bytes) AS smallest, avg(bytes) AS avg_bytes
FROM ev WHERE NOT is_bot AND page <> '/login'
GROUP BY ALL HAVING count(*) > 1
"""
BAD = b'{"event_time": "2019-01-22T00:00:30.000000Z", "page": "/", "status": "teapot", "visitor_id": "v1"}'
DRILL = (None, "after-send", "after-commit")


def test_aws_style_program_equals_duckdb_across_kill_9(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    sink = f"{source}.out"
    events = clickstream(4000, seed=21, spread_s=0.5)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = pa.Table.from_pylist(events)  # noqa: F841  (DuckDB's replacement scan reads it)
    con.execute('CREATE TABLE ev AS SELECT * FROM "table"')
    cursor = con.execute(ORACLE)
    names = [d[0] for d in cursor.description]
    expected = sorted((dict(zip(names, row, strict=True)) for row in cursor.fetchall()), key=row_sort_key)
    app = tmp_path / "app.sql"
    app.write_text(APP)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    args = ("--sql", str(app), "--source", source, "--sink-topic", sink, "--input-schema", str(schema),
            "--idle-timeout", "2s")  # fmt: skip
    part = len(events) // len(DRILL)
    deaths = []
    for k, point in enumerate(DRILL):
        produce(kafka_bootstrap, source, events[k * part : (k + 1) * part])
        if k == 1:
            produce_raw(kafka_bootstrap, source, [BAD])
        env = {"TIDELAKE_STREAM_CRASH_AT": point} if point else {}
        with sql_worker(kafka_bootstrap, tmp_path / "state", *args, env_extra=env) as worker:
            if point is None:
                reader = TopicReader(kafka_bootstrap, sink)
                reader.wait_until(lambda r: len(r) >= 1, 120, "the first rows", worker)
                worker.send_signal(signal.SIGKILL)
            deaths.append(worker.wait(timeout=120))
    produce(kafka_bootstrap, source, events[len(DRILL) * part :])
    with sql_worker(kafka_bootstrap, tmp_path / "state", *args) as worker:
        reader.wait_until(lambda r: len(r) >= len(expected), 180, f"{len(expected)} rows", worker)
        summary = stop_and_summary(worker)
    reader.poll()
    rows = reader.values()
    reader.close()
    assert deaths == [-signal.SIGKILL] * len(DRILL)
    assert len(expected) > 100
    assert len(rows) == len(expected), f"{len(rows) - len(expected)} extra rows"  # one row per window and key
    assert sorted(rows, key=row_sort_key) == expected
    assert (summary["events_in"], summary["errors"]) == (len(events) + 1, 1)
    dlq = TopicReader(kafka_bootstrap, dlq_topic(source))
    dlq.wait_until(lambda r: len(r) >= 1, 30, "the record that does not fit the schema")
    [letter] = dlq.messages
    dlq.close()
    assert letter.value == BAD
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["error.type"] == "input-schema-mismatch"
    assert headers["error.message"] == "column 'status' (INTEGER): 'teapot' is not an integer"
