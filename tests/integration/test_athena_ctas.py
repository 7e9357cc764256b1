"""CREATE TABLE AS SELECT into the results bucket: awswrangler's read_sql_query with its default
ctas_approach=True, boto3's CTAS with its manifest, and what CTAS refuses."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import awswrangler as wr
import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from queries.athena_ddl import AthenaDdl
from queries.s3_api import RESULTS_BUCKET
from tests.integration.test_athena_ddl import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    pq.write_table(pa.table({"status": [200, 404, 404]}), _dataset(tmp_path) / "part-0.parquet")
    one = Stack(tmp_path)
    # as serve wires it: results in s3://tidelake-query-results/, CTAS on the engine into that bucket
    one.service.results_uri = f"s3://{RESULTS_BUCKET}/"
    one.service.ddl = AthenaDdl(one.glue, engine=one.engine, results=tmp_path / "results").run
    url = one.athena.meta.endpoint_url
    for name in ("athena_endpoint_url", "s3_endpoint_url", "glue_endpoint_url"):
        monkeypatch.setattr(wr.config, name, url)
    monkeypatch.setattr(
        boto3, "DEFAULT_SESSION", boto3.Session("local", "local", region_name="us-east-1"), raising=False
    )
    try:
        yield one
    finally:
        one.close()


def _dataset(root: Path) -> Path:
    folder = root / "lake" / "clickstream_events" / "dt=2026-11-30" / "hour=00"
    folder.mkdir(parents=True)
    return folder


def test_awswrangler_default_ctas_approach_counts_the_lake(stack: Stack, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to a guessed bucket: the workgroup names one
        frame = wr.athena.read_sql_query("SELECT count(*) AS n FROM clickstream_events", database="default")
    assert frame["n"].tolist() == [3]
    # keep_files=False: awswrangler deletes the CTAS files and manifest it read, and only those
    frame = wr.athena.read_sql_query(
        "SELECT status, count(*) AS n FROM clickstream_events GROUP BY status ORDER BY status",
        database="default",
        keep_files=False,
    )
    assert frame.to_dict("records") == [{"status": 200, "n": 1}, {"status": 404, "n": 2}]
    left = sorted(p.name for p in (tmp_path / "results").iterdir() if p.name.startswith("temp_table_"))
    assert len(left) == 2, left  # the first query's folder and manifest (keep_files=True, the default)
    assert left[1] == f"{left[0]}-manifest.csv"


def test_boto3_ctas_reports_its_manifest_and_refuses_the_lake(stack: Stack) -> None:
    sql = (
        'CREATE TABLE "default"."by_status" WITH (external_location = \'s3://tidelake-query-results/by_status\', '
        "format = 'PARQUET', write_compression = 'SNAPPY') AS SELECT status FROM clickstream_events WHERE status = 404"
    )
    execution, rows = stack.run(sql)
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert execution["StatementType"] == "DDL"
    assert rows == [["rows"], ["2"]]
    manifest = execution["Statistics"]["DataManifestLocation"]
    assert manifest == "s3://tidelake-query-results/by_status-manifest.csv"
    listed = stack.s3.get_object(Bucket=RESULTS_BUCKET, Key="by_status-manifest.csv")["Body"].read().decode()
    (path,) = listed.split()
    key = path.removeprefix(f"s3://{RESULTS_BUCKET}/")
    body = stack.s3.get_object(Bucket=RESULTS_BUCKET, Key=key)["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).to_pylist() == [{"status": 404}, {"status": 404}]
    assert "HIVE_PATH_ALREADY_EXISTS" in stack.failed(sql)
    into_lake = "CREATE TABLE x WITH (external_location = 's3://tidelake-lake/x/') AS SELECT 1 AS one"
    assert "is not a new folder of s3://tidelake-query-results/" in stack.failed(into_lake)
    partitioned = (
        "CREATE TABLE y WITH (partitioned_by = ARRAY['status']) AS SELECT status FROM clickstream_events"
    )
    assert "partitioned_by is not run by tidelake" in stack.failed(partitioned)
    # a query's own results stay read-only; CTAS files can be deleted
    results_key = execution["ResultConfiguration"]["OutputLocation"].removeprefix(f"s3://{RESULTS_BUCKET}/")
    answer = stack.s3.delete_objects(
        Bucket=RESULTS_BUCKET, Delete={"Objects": [{"Key": results_key}, {"Key": key}]}
    )
    assert [d["Key"] for d in answer.get("Deleted", [])] == [key]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [(results_key, "AccessDenied")]
