"""One bad file never takes the lake down (issue 14, item 4): garbage named `*.parquet`, a FIFO,
a broken footer. Its table is read without it, the other tables are untouched, and the catalog
names it in its warnings (the engine, `tidelake catalog`, the API)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.errors import QueryCancelled, TableNotFound
from queries.api import create_app
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.service import QueryService
from tests.unit.queries_lake import event, write_events

NOT_PARQUET = "not a Parquet file (too short for a footer); it is left out of its table"
NO_MAGIC = "not a Parquet file (no PAR1 magic at both ends); it is left out of its table"
NOT_REGULAR = "not a regular file (a FIFO, socket or device); tidelake reads only regular files"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    write_events(root, [event("2026-11-23T07:10:00", "v1", "/a"), event("2026-11-23T08:10:00", "v2", "/b")])
    (root / "zbad").mkdir()
    (root / "zbad" / "x.parquet").write_text("garbage\n")  # the issue's `echo garbage > lake/zbad/x.parquet`
    return root


def test_a_garbage_dataset_leaves_the_other_tables_untouched(lake: Path) -> None:
    with Engine(lake) as engine:
        rows = engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist()
        warnings = engine.warnings()
        with pytest.raises(TableNotFound) as caught:
            engine.run("SELECT * FROM zbad")
    assert rows == [{"n": 2}]
    assert warnings == [f"{lake}/zbad/x.parquet: {NOT_PARQUET}"]
    assert str(caught.value) == (
        f"table 'zbad' has no readable Parquet files under {lake}/zbad; skipped: {lake}/zbad/x.parquet: {NOT_PARQUET}"
    )


def test_a_garbage_file_in_a_partition_is_left_out_of_its_table(lake: Path) -> None:
    bad = lake / "clickstream_events" / "dt=2026-11-23" / "hour=07" / "part-1.parquet"
    bad.write_bytes(b"PAR1 this is not a footer PAR1")  # passes the magic check, fails the footer
    text = bad.with_name("part-2.parquet")
    text.write_text("a text file, long enough for a footer\n")
    with Engine(lake) as engine:
        first = engine.run("SELECT page FROM clickstream_events ORDER BY page").table.to_pylist()
        again = engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist()
        warnings = engine.warnings()
    assert first == [{"page": "/a"}, {"page": "/b"}]
    assert again == [{"n": 2}]  # the view is reused, and the bad footer is still named
    # found while listing (no magic), then while building the view (the footer)
    assert [w.split(": ", 1)[0] for w in warnings] == [str(text), str(bad), f"{lake}/zbad/x.parquet"]
    assert warnings[0] == f"{text}: {NO_MAGIC}"
    assert warnings[1].startswith(f"{bad}: not a readable Parquet file (")
    assert warnings[1].endswith("); it is left out of 'clickstream_events'")


def test_a_fifo_named_parquet_is_skipped_without_opening_it(lake: Path) -> None:
    fifo = lake / "clickstream_events" / "dt=2026-11-23" / "hour=07" / "pipe.parquet"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with Engine(lake) as engine:
        assert engine.run("SELECT 1 AS one").table.to_pylist() == [{"one": 1}]
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 2}]
        assert engine.warnings()[0] == f"{fifo}: {NOT_REGULAR}"


def test_listing_the_lake_counts_against_the_time_limit(lake: Path) -> None:
    with Engine(lake, Limits(timeout_s=1e-9)) as engine, pytest.raises(QueryCancelled) as caught:
        engine.run("SELECT 1")
    assert str(caught.value) == "query cancelled: time limit of 1e-09 s (listing the lake)"


def test_the_api_lists_tables_and_names_the_bad_file(lake: Path, tmp_path: Path) -> None:
    with Engine(lake) as engine:
        service = QueryService(engine, ResultStore(tmp_path / "results"))
        try:
            with TestClient(create_app(service), base_url="http://localhost") as client:
                tables = client.get("/api/tables")
                catalog = client.get("/api/catalog")
        finally:
            service.close()
    assert tables.status_code == 200
    assert [(t["table"], t["files"], t["warnings"]) for t in tables.json()] == [
        ("clickstream_events", 2, []),
        ("zbad", 0, [f"{lake}/zbad/x.parquet: {NOT_PARQUET}"]),
    ]
    assert catalog.status_code == 200
    assert [(t["table"], t["warnings"]) for t in catalog.json()] == [
        ("clickstream_events", []),
        ("zbad", [f"{lake}/zbad/x.parquet: {NOT_PARQUET}"]),
    ]


def _tidelake(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "tidelake.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_tidelake_catalog_warns_about_the_bad_file(lake: Path) -> None:
    shown = _tidelake("catalog", "--lake", str(lake))
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == f"warning: skipped {lake}/zbad/x.parquet: {NOT_PARQUET}\n"
    assert "(no readable files: see the warnings)" in shown.stdout
    as_json = _tidelake("catalog", "--lake", str(lake), "--json")
    tables = json.loads(as_json.stdout)["tables"]
    assert [(t["table"], t["rows"], t["warnings"]) for t in tables] == [
        ("clickstream_events", 2, []),
        ("zbad", 0, [f"{lake}/zbad/x.parquet: {NOT_PARQUET}"]),
    ]
