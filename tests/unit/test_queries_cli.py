"""`tidelake query` and `tidelake catalog` as a person runs them (a real process, a lake made here)."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.unit.queries_lake import event, write_events


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    write_events(
        root,
        [event("2026-11-23T07:10:00", "v1", "/a"), event("2026-11-23T07:20:00", "v2", "/a"),
         event("2026-11-23T08:05:00", "v1", "/b")],
    )  # fmt: skip
    return root


def tidelake(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "tidelake.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_query_prints_rows_bytes_scanned_and_cost(lake: Path) -> None:
    done = tidelake(
        "query",
        "SELECT page, count(*) AS n FROM clickstream_events GROUP BY 1 ORDER BY 2 DESC",
        "--lake",
        str(lake),
    )
    assert done.returncode == 0, done.stderr
    assert "│ /a   │ 2 │" in done.stdout
    assert "2 rows; " in done.stdout
    assert (
        "billed 10 MB = $0.000050 ($5/TB, rounded up to the MB, 10 MB minimum, decimal units)" in done.stdout
    )


def test_refused_query_exits_2_with_one_line(lake: Path) -> None:
    done = tidelake("query", "SELECT * FROM read_csv('/etc/passwd')", "--lake", str(lake))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: refused: table function read_csv() is not allowed: it reads files by path or runs SQL "
        "text; tidelake queries read the lake's tables by name (see `tidelake catalog`). Nothing was "
        "run or written.\n"
    )


def test_named_query_with_params_as_json_and_parquet_out(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "top.parquet"
    done = tidelake(
        "query", "top_pages_per_hour", "-p", "day=2026-11-23", "-p", "hour=7", "--format", "json",
        "--out", str(out), "--lake", str(lake),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["columns"] == ["hour_start", "rank", "page", "views"]
    assert [(r["page"], r["views"]) for r in answer["rows"]] == [("/a", 2)]
    assert (answer["billed_mb"], answer["cost_usd"]) == (10, 0.00005)
    assert pq.read_table(out).num_rows == 1


def test_bad_param_exits_2(lake: Path) -> None:
    done = tidelake("query", "top_pages_per_hour", "-p", "hour=seven", "--lake", str(lake))
    assert done.returncode == 2
    assert done.stderr == "error: parameter hour must be INTEGER, got 'seven' (example: 10)\n"


def test_catalog_json_lists_partitions_rows_and_bytes(lake: Path) -> None:
    done = tidelake("catalog", "--json", "--lake", str(lake))
    assert done.returncode == 0, done.stderr
    (table,) = json.loads(done.stdout)["tables"]
    assert (table["table"], table["partitions"], table["files"], table["rows"]) == (
        "clickstream_events",
        2,
        2,
        3,
    )
    assert table["partition_keys"] == {"dt": "DATE", "hour": "INTEGER"}
    assert table["bytes"] == sum(p.stat().st_size for p in lake.rglob("*.parquet"))


def test_catalog_emits_athena_ddl(lake: Path) -> None:
    done = tidelake("catalog", "--emit-ddl", "athena", "--location", "s3://b/lake", "--lake", str(lake))
    assert done.returncode == 0, done.stderr
    assert "LOCATION 's3://b/lake/clickstream_events/';" in done.stdout


def test_dot_dot_after_a_link_to_root_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "L"  # the issue's `mkdir L && ln -s / L/r`
    lake.mkdir()
    (lake / "r").symlink_to("/")
    sql = f"SELECT count(*) FROM read_csv('{lake}/r/../etc/passwd', header=false, sep=':')"
    done = tidelake("query", sql, "--lake", str(lake), "--format", "json")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: refused: table function read_csv() is not allowed")


def _athena(port: int, action: str, body: dict[str, str]) -> dict[str, Any]:
    """One call of Athena's JSON protocol to `tidelake serve`, as boto3 makes it."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(),
        headers={"X-Amz-Target": f"AmazonAthena.{action}", "content-type": "application/x-amz-json-1.1"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as answer:
        return dict(json.load(answer))


def _run_one_query(port: int, sql: str) -> str:
    """Start `sql` once the server listens, wait until it SUCCEEDED; its execution id."""
    deadline = time.monotonic() + 60
    while True:
        try:
            query_id = str(_athena(port, "StartQueryExecution", {"QueryString": sql})["QueryExecutionId"])
            break
        except urllib.error.URLError as exc:  # not listening yet
            assert not isinstance(exc, urllib.error.HTTPError), exc
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.1)
    while True:
        execution = _athena(port, "GetQueryExecution", {"QueryExecutionId": query_id})["QueryExecution"]
        if execution["Status"]["State"] == "SUCCEEDED":
            return query_id
        assert execution["Status"]["State"] in ("QUEUED", "RUNNING"), execution["Status"]
        assert time.monotonic() < deadline, "the query did not finish"
        time.sleep(0.05)


def test_serve_keeps_results_under_the_runtime_state_folder(lake: Path, tmp_path: Path) -> None:
    """`tidelake serve` run from a checkout leaves no `query-results/` beside the lake: results are
    runtime state, in `<TIDELAKE_RUNTIME__STATE_DIR>/query-results`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "run"
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TIDELAKE_RUNTIME__STATE_DIR": str(state)}
    command = [sys.executable, "-m", "tidelake.cli", "serve", "--port", str(port), "--lake", "lake"]
    with subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stderr is not None
            banner = server.stderr.readline()
            assert f"results {state / 'query-results'});" in banner, banner
            query_id = _run_one_query(port, "SELECT count(*) AS n FROM clickstream_events")
        finally:
            server.terminate()
    assert (state / "query-results" / f"{query_id}.csv").read_text() == '"n"\n"3"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "run"]
