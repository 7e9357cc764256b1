"""CREATE TABLE AS SELECT statements as awswrangler and people write them, read by queries.athena_ctas."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from queries.athena_ctas import CtasError, parse_ctas, run_ctas
from queries.engine import Engine

WRANGLER = """CREATE TABLE "default"."temp_table_0a1b"
WITH(
    external_location = 's3://tidelake-query-results/temp_table_0a1b',
    write_compression = 'SNAPPY',
    format = 'PARQUET')
AS SELECT count(*) FROM clickstream_events
WITH NO DATA"""


def test_awswranglers_statement() -> None:
    statement = parse_ctas(WRANGLER, "uploads")
    assert statement is not None
    assert (statement.database, statement.name, statement.query, statement.with_data) == (
        "default",
        "temp_table_0a1b",
        "SELECT count(*) FROM clickstream_events",
        False,
    )
    assert statement.properties == {
        "external_location": "s3://tidelake-query-results/temp_table_0a1b",
        "write_compression": "SNAPPY",
        "format": "PARQUET",
    }
    assert (statement.folder_key, statement.manifest_key) == (
        "temp_table_0a1b",
        "temp_table_0a1b-manifest.csv",
    )


def test_bare_names_default_location_and_what_is_not_ctas() -> None:
    statement = parse_ctas("create table t as (select 1 as one);", "logs")
    assert statement is not None
    assert (statement.database, statement.name, statement.query, statement.folder_key) == (
        "logs",
        "t",
        "select 1 as one",
        "tables/logs_t",
    )
    arrays = parse_ctas(
        "CREATE TABLE t WITH (partitioned_by = ARRAY['a', 'b'], bucket_count = 4) AS SELECT 1", "d"
    )
    assert arrays is not None and arrays.properties == {
        "partitioned_by": "ARRAY['a', 'b']",
        "bucket_count": "4",
    }
    assert parse_ctas("CREATE EXTERNAL TABLE t (a int) LOCATION 's3://x/'", "d") is None
    assert parse_ctas("CREATE TABLE t (a int)", "d") is None
    assert parse_ctas("SELECT 1", "d") is None
    with pytest.raises(CtasError, match="not closed"):
        parse_ctas("CREATE TABLE t WITH (format = 'PARQUET' AS SELECT 1", "d")
    for location in (
        "s3://tidelake-lake/x",
        "s3://tidelake-query-results/../x",
        "s3://tidelake-query-results/a/b",
    ):
        escaping = parse_ctas(f"CREATE TABLE t WITH (external_location = '{location}') AS SELECT 1", "d")
        assert escaping is not None
        with pytest.raises(CtasError, match="is not a new folder of s3://tidelake-query-results/"):
            _ = escaping.folder_key


def test_run_writes_one_parquet_file_and_its_manifest(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    results = tmp_path / "results"
    statement = parse_ctas(
        WRANGLER.removesuffix("\nWITH NO DATA").replace("count(*) FROM clickstream_events", "42 AS n"),
        "default",
    )
    assert statement is not None
    with Engine(tmp_path / "lake") as engine:
        answer = run_ctas(statement, engine, results)
        assert answer.to_pylist() == [{"rows": 1}]
        (path,) = (results / "temp_table_0a1b-manifest.csv").read_text().split()
        name = path.removeprefix("s3://tidelake-query-results/temp_table_0a1b/")
        assert pq.read_table(results / "temp_table_0a1b" / name).to_pylist() == [{"n": 42}]
        assert sorted(p.name for p in (results / "temp_table_0a1b").iterdir()) == [name]  # no temp file left
        with pytest.raises(CtasError, match="HIVE_PATH_ALREADY_EXISTS"):
            run_ctas(statement, engine, results)
        with pytest.raises(CtasError, match="format 'ORC' is not run"):
            run_ctas(parse_ctas("CREATE TABLE o WITH (format = 'ORC') AS SELECT 1", "d"), engine, results)  # type: ignore[arg-type]
