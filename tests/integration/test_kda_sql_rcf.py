"""KDA SQL's RANDOM_CUT_FOREST on the real broker, 4 partitions: page-view-anomalies.sql over the
replayed zanbil sample gives the TOML app's rows, and a RANDOM_CUT_FOREST_WITH_EXPLANATION program
gives, across kill -9 at checkpoint moments, the rows of an uninterrupted run: DuckDB's per-minute
rows scored in window order by the forest (stream_apps/anomaly.py) with its fixed seed."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producers.parsing import parse_file
from stream_apps.anomaly import RandomCutForest, make_row_hook
from stream_apps.catalog import shipped_specs
from tests.integration.test_kda_sql_apps import DRILL, SAMPLE, oracle_rows, run_drill, sql_worker
from tests.stream_events import clickstream
from tests.stream_kafka import REPO, TopicReader
from tests.stream_oracle import expected_rows

pytestmark = pytest.mark.integration


def by_window(rows: list[dict[str, Any]], field: str = "window_start") -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r[field])


def test_page_view_anomalies_sql_over_zanbil_sample_equals_its_toml_app(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    done = subprocess.run([sys.executable, "-m", "tidelake.cli", "replay", str(SAMPLE), "--topic", source,
                           "--max-speed", "--json", "-b", kafka_bootstrap],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [record.payload() for record in parse_file(SAMPLE).records]
    toml = dataclasses.replace(shipped_specs()["page-view-anomalies"], source=source)
    expected = by_window(expected_rows(events, toml))  # DuckDB's per-minute counts
    hook = make_row_hook(toml)  # the TOML app's scorer, fed the counts in window order
    assert hook is not None
    for row in expected:
        hook(row)
    sink = f"{source}.anomalies"
    with sql_worker(kafka_bootstrap, tmp_path / "state", "--sql", "page-view-anomalies", "--source", source,
                    "--sink-topic", sink) as worker:  # fmt: skip
        reader = TopicReader(kafka_bootstrap, sink)
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        reader.close()
    assert len(expected) > 40  # the sample spans 41 minutes
    assert by_window(rows) == expected  # scores included (the sink's partitions interleave rows)
    assert max(r["anomaly_score"] for r in rows) > 0


#: Views and the largest response per minute into an in-application stream, scored with explanation:
#: 20 trees of 16 shingles of 2 minutes, so the forest is rebuilt every 16 rows (and on restore).
APP = """
CREATE OR REPLACE STREAM "PER_MINUTE" ("minute" TIMESTAMP, "views" BIGINT, "biggest" BIGINT);
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("minute" TIMESTAMP, "views" BIGINT, "biggest" BIGINT,
    "ANOMALY_SCORE" DOUBLE, "ANOMALY_EXPLANATION" VARCHAR(512));
CREATE OR REPLACE PUMP "PER_MINUTE_PUMP" AS INSERT INTO "PER_MINUTE"
    SELECT STREAM FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE), COUNT(*), MAX("bytes")
    FROM "SOURCE_SQL_STREAM_001" GROUP BY FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO MINUTE);
CREATE OR REPLACE PUMP "SCORE_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST_WITH_EXPLANATION(
        CURSOR(SELECT STREAM * FROM "PER_MINUTE"), 20, 16, 100000, 2, false));
"""
ORACLE = """
SELECT strftime(time_bucket(INTERVAL 1 MINUTE, CAST(event_time AS TIMESTAMPTZ)), '%Y-%m-%dT%H:%M:%S.%fZ') AS minute,
       count(*) AS views, max(bytes) AS biggest
FROM ev GROUP BY ALL
"""


def test_forest_with_explanation_across_kill_9_equals_an_uninterrupted_run(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=4)
    sink = f"{source}.out"
    events = clickstream(4000, seed=23, spread_s=0.6)
    for i in range(2000, 2300):  # a burst of 300 more views late in the run, after a restart
        events[i] = dict(events[i], bytes=events[i]["bytes"] + 9000)
    expected = by_window(oracle_rows(events, ORACLE), "minute")
    forest = RandomCutForest(num_trees=20, tree_size=16, shingle_size=2, seed=7)
    for row in expected:
        score = forest.score([row["views"], row["biggest"]])
        row["ANOMALY_SCORE"] = round(score.score, 6)
        row["ANOMALY_EXPLANATION"] = json.dumps(
            {name: {"ATTRIBUTION_SCORE": f"{share:.4f}"} for name, share in zip(("views", "biggest"), score.attribution, strict=True)}
        )  # fmt: skip
    app = tmp_path / "app.sql"
    app.write_text(APP)
    args = ("--sql", str(app), "--source", source, "--sink-topic", sink, "--idle-timeout", "2s")
    rows, summary, deaths = run_drill(
        kafka_bootstrap, source, sink, events, args, tmp_path / "state", len(expected)
    )
    assert deaths == [-signal.SIGKILL] * len(DRILL)
    assert len(expected) > 32  # two forest rebuilds
    assert by_window(rows, "minute") == expected  # one row per minute, scores as uninterrupted
    assert summary["events_in"] == len(events)
