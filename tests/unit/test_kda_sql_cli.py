"""`tidelake stream explain|list|run --sql` without Kafka: the plan, the shipped SQL apps, and bad
usage refused with exit code 2 and a message (the CLI's entry point, `tidelake.cli.main`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tidelake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidelake.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, COLUMNS="200", NO_COLOR="1"),
    )  # fmt: skip


def test_explain_prints_the_window_keys_aggregates_and_output() -> None:
    done = tidelake("stream", "explain", "page-views-1m")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "input SOURCE_SQL_STREAM_001: the JSON fields of each record; ROWTIME = 'event_time' (event time)",
        'pump PAGE_VIEWS_1M_PUMP: SOURCE_SQL_STREAM_001 -> DESTINATION_SQL_STREAM, tumbling window 60s; keys "page"; '
        "aggregates COUNT(*)",
        "output DESTINATION_SQL_STREAM: page VARCHAR(256), window_start TIMESTAMP, window_end TIMESTAMP, count BIGINT",
    ]


def test_explain_json_of_a_sliding_program(tmp_path: Path) -> None:
    app = tmp_path / "app.sql"
    app.write_text(
        'CREATE STREAM "DESTINATION_SQL_STREAM" ("k" VARCHAR(8), "n" BIGINT);\n'
        'CREATE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM "k", COUNT(*) OVER w\n'
        'FROM "SOURCE_SQL_STREAM_001" WINDOW w AS (PARTITION BY "k" RANGE INTERVAL \'5\' MINUTE PRECEDING);\n'
    )
    done = tidelake("stream", "explain", str(app), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "pumps": ["P"],
        "window": {"kind": "sliding", "size_s": 300.0},
        "keys": ['"k"'],
        "aggregates": ["COUNT(*)"],
        "output": {"stream": "DESTINATION_SQL_STREAM", "columns": ["k", "n"]},
    }


def test_list_shows_the_sql_apps_beside_the_toml_apps() -> None:
    done = tidelake("stream", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [a["name"] for a in listed["sql_apps"]] == [
        "error-rate-1m",
        "page-view-anomalies",
        "page-views-1m",
    ]
    assert len(listed["apps"]) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stream", "explain", "no-such-app"), "no KDA SQL program 'no-such-app'"),
        (
            ("stream", "run", "--sql", "page-views-1m", "--window", "tumbling:60s"),
            "--sql runs a KDA SQL program",
        ),
        (("stream", "run", "page-views-1m", "--output", "A=b"), "--output and --input-schema go with --sql"),
        (
            ("stream", "run", "--sql", "page-views-1m", "--output", "nope"),
            "--output 'nope': write STREAM=TOPIC",
        ),
        (("stream", "run", "--sql", "page-views-1m", "--output", "OTHER=t"), "--output names OTHER"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: tuple[str, ...], message: str) -> None:
    done = tidelake(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_a_refused_program_exits_2_with_file_line_and_column(tmp_path: Path) -> None:
    app = tmp_path / "bad.sql"
    app.write_text('CREATE STREAM "DESTINATION_SQL_STREAM" ("n" BIGINT);\nCREATE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"\n'
                   '  SELECT STREAM MY_UDF("x") FROM "SOURCE_SQL_STREAM_001";\n')  # fmt: skip
    done = tidelake("stream", "explain", str(app))
    assert done.returncode == 2
    assert f"{app}:3:17: function MY_UDF is not supported" in done.stderr
