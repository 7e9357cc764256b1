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
from tests.stream_kafka import REPO, TopicReader, produce, produce_raw, stop_and_summary, stream_run
from tests.stream_oracle import expected_rows, row_sort_key

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "zanbil-access-10k" / "access-10k.log"
FAST = {"TIDELAKE_STREAM__TICK_S": "0.2", "TIDELAKE_STREAM__CHECKPOINT_INTERVAL_S": "0.2"}


@contextmanager
def sql_worker(bootstrap: str, state_dir: Path, *args: str,
               env_extra: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`tidelake stream run --sql ...` in a subprocess; stopped (SIGTERM, then SIGKILL) on exit."""
    with stream_run(bootstrap, state_dir, *args, env={**FAST, **(env_extra or {})}) as process:
        yield process


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


def oracle_rows(events: list[dict], query: str) -> list[dict]:
    """`query` over the events as table `ev`, rows as dicts sorted like the app's."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = pa.Table.from_pylist(events)  # noqa: F841  (DuckDB's replacement scan reads it)
    con.execute('CREATE TABLE ev AS SELECT * FROM "table"')
    cursor = con.execute(query)
    names = [d[0] for d in cursor.description]
    return sorted((dict(zip(names, row, strict=True)) for row in cursor.fetchall()), key=row_sort_key)


def run_drill(bootstrap: str, source: str, sink: str, events: list[dict], args: tuple[str, ...], state: Path,
              expected_rows: int, bad: bytes | None = None) -> tuple[list[dict], dict, list[int]]:  # fmt: skip
    """Produce the events in parts, one worker run per part dying at each DRILL point (the first by
    `kill -9` from outside once rows appear), then a last run to the end: (rows, summary, deaths)."""
    part = len(events) // len(DRILL)
    deaths = []
    for k, point in enumerate(DRILL):
        produce(bootstrap, source, events[k * part : (k + 1) * part])
        if k == 1 and bad is not None:
            produce_raw(bootstrap, source, [bad])
        env = {"TIDELAKE_STREAM_CRASH_AT": point} if point else {}
        with sql_worker(bootstrap, state, *args, env_extra=env) as worker:
            if point is None:
                reader = TopicReader(bootstrap, sink)
                reader.wait_until(lambda r: len(r) >= 1, 120, "the first rows", worker)
                worker.send_signal(signal.SIGKILL)
            deaths.append(worker.wait(timeout=120))
    produce(bootstrap, source, events[len(DRILL) * part :])
    with sql_worker(bootstrap, state, *args) as worker:
        reader.wait_until(lambda r: len(r) >= expected_rows, 180, f"{expected_rows} rows", worker)
        summary = stop_and_summary(worker)
    reader.poll()
    rows = reader.values()
    reader.close()
    return rows, summary, deaths


def test_aws_style_program_equals_duckdb_across_kill_9(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    sink = f"{source}.out"
    events = clickstream(4000, seed=21, spread_s=0.5)
    expected = oracle_rows(events, ORACLE)
    app = tmp_path / "app.sql"
    app.write_text(APP)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    args = ("--sql", str(app), "--source", source, "--sink-topic", sink, "--input-schema", str(schema),
            "--idle-timeout", "2s")  # fmt: skip
    rows, summary, deaths = run_drill(
        kafka_bootstrap, source, sink, events, args, tmp_path / "state", len(expected), bad=BAD
    )
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


#: A sliding window and a pump chain: a per-row pump (WHERE, CASE, UPPER) into an in-application
#: stream, read by a sliding RANGE window partitioned by visitor, into an output stream not named
#: DESTINATION_SQL_STREAM (written to --output).
SLIDING = """
CREATE OR REPLACE STREAM "CLEAN" ("visitor_id" VARCHAR(16), "page" VARCHAR(32), "kb" DOUBLE, "error" INTEGER);
CREATE OR REPLACE STREAM "VISITOR_MINUTE" ("visitor_id" VARCHAR(16), "at" TIMESTAMP, "views" BIGINT,
    "kb" DOUBLE, "errors" BIGINT, "pages" BIGINT);
CREATE OR REPLACE PUMP "CLEAN_PUMP" AS INSERT INTO "CLEAN"
    SELECT STREAM "visitor_id", UPPER("page"), "bytes" / 1000.0, CASE WHEN "status" >= 400 THEN 1 ELSE 0 END
    FROM "SOURCE_SQL_STREAM_001" WHERE NOT "is_bot";
CREATE OR REPLACE PUMP "SLIDING_PUMP" AS INSERT INTO "VISITOR_MINUTE"
    SELECT STREAM "visitor_id", ROWTIME, COUNT(*) OVER w, SUM("kb") OVER w, SUM("error") OVER w,
           COUNT(DISTINCT "page") OVER w
    FROM "CLEAN"
    WINDOW w AS (PARTITION BY "visitor_id" RANGE INTERVAL '1' MINUTE PRECEDING);
"""
SLIDING_ORACLE = """
WITH c AS (SELECT visitor_id, upper(page) AS page, bytes / 1000.0 AS kb, CASE WHEN status >= 400 THEN 1 ELSE 0 END AS error,
                  CAST(event_time AS TIMESTAMPTZ) AS t FROM ev WHERE NOT is_bot),
     w AS (SELECT DISTINCT visitor_id, t FROM c)
SELECT w.visitor_id, strftime(w.t, '%Y-%m-%dT%H:%M:%S.%fZ') AS at, count(*) AS views, sum(c.kb) AS kb,
       sum(c.error) AS errors, count(DISTINCT c.page) AS pages
FROM w JOIN c ON c.visitor_id = w.visitor_id AND c.t BETWEEN w.t - INTERVAL 1 MINUTE AND w.t
GROUP BY w.visitor_id, w.t
"""


def test_sliding_window_pump_chain_equals_duckdb_across_kill_9(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    sink = f"{source}.visitor-minute"
    events = clickstream(3000, seed=22, spread_s=0.5, visitors=12)
    expected = oracle_rows(events, SLIDING_ORACLE)
    app = tmp_path / "sliding.sql"
    app.write_text(SLIDING)
    args = (
        "--sql",
        str(app),
        "--source",
        source,
        "--output",
        f"VISITOR_MINUTE={sink}",
        "--idle-timeout",
        "2s",
    )
    rows, summary, deaths = run_drill(
        kafka_bootstrap, source, sink, events, args, tmp_path / "state", len(expected)
    )
    assert deaths == [-signal.SIGKILL] * len(DRILL)
    assert len(expected) > 2000
    assert len(rows) == len(expected), (
        f"{len(rows) - len(expected)} extra rows"
    )  # one row per (visitor, time)

    def by_visitor_and_time(row: dict) -> tuple[str, str]:
        return row["visitor_id"], row["at"]

    for row, want in zip(
        sorted(rows, key=by_visitor_and_time), sorted(expected, key=by_visitor_and_time), strict=True
    ):
        assert row.pop("kb") == pytest.approx(want.pop("kb"), abs=1e-9)  # a float sum in another order
        assert row == want
    assert summary["events_in"] == len(events)
