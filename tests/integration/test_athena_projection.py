"""Partition projection through boto3 against Athena, Glue and S3 on one port, as serve wires them:
AWS's own examples ("Amazon Data Firehose example", "Use dynamic ID partitioning") typed as DDL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.test_athena_ddl import LAKE, Stack

pytestmark = pytest.mark.integration

FIREHOSE_DDL = """
CREATE EXTERNAL TABLE logs.firehose_events (event_id string, bytes bigint)
PARTITIONED BY (datehour STRING)
STORED AS PARQUET
LOCATION "s3://tidelake-lake/firehose/"
TBLPROPERTIES (
  "projection.enabled" = "true",
  "projection.datehour.type" = "date",
  "projection.datehour.format" = "yyyy/MM/dd/HH",
  "projection.datehour.range" = "2024/03/05/10,2024/03/05/13",
  "projection.datehour.interval" = "1",
  "projection.datehour.interval.unit" = "HOURS",
  "storage.location.template" = "s3://tidelake-lake/firehose/${datehour}/"
)
"""
DEVICE_DDL = """
CREATE EXTERNAL TABLE logs.device_events (event_id string, bytes bigint)
PARTITIONED BY (device_id STRING)
STORED AS PARQUET
LOCATION "s3://tidelake-lake/devices/"
TBLPROPERTIES (
  "projection.enabled" = "true",
  "projection.device_id.type" = "injected",
  "storage.location.template" = "s3://tidelake-lake/devices/${device_id}"
)
"""


def _upload(stack: Stack, key: str, ids: list[str], sizes: list[int]) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"event_id": ids, "bytes": sizes}), sink)
    stack.s3.put_object(Bucket=LAKE, Key=key, Body=sink.getvalue().to_pybytes())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    one = Stack(tmp_path)
    try:
        one.ok("CREATE DATABASE logs")
        yield one
    finally:
        one.close()


def test_firehose_layout_projected_by_datehour_without_registering_partitions(stack: Stack) -> None:
    _upload(stack, "firehose/2024/03/05/11/a.parquet", ["a", "b"], [10, 20])
    _upload(stack, "firehose/2024/03/05/13/b.parquet", ["c"], [5])
    _upload(stack, "firehose/2024/03/05/14/c.parquet", ["late"], [1000])  # past the range's end
    stack.ok(FIREHOSE_DDL)
    # no MSCK REPAIR, no partition in the catalog: projection computes them
    assert stack.ok("SHOW PARTITIONS logs.firehose_events") == [["partition"]]
    assert stack.ok("SELECT datehour, sum(bytes) AS b FROM logs.firehose_events GROUP BY 1 ORDER BY 1") == [
        ["datehour", "b"],
        ["2024/03/05/11", "30"],
        ["2024/03/05/13", "5"],
    ]
    # a WHERE on the projected key reads only the hours it selects
    execution, rows = stack.run(
        "SELECT count(*) AS n, sum(bytes) AS b FROM logs.firehose_events WHERE datehour >= '2024/03/05/12'"
    )
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert rows == [["n", "b"], ["1", "5"]]
    every, _ = stack.run("SELECT sum(bytes) AS b FROM logs.firehose_events")
    scanned = execution["Statistics"]["DataScannedInBytes"]
    assert 0 < scanned < every["Statistics"]["DataScannedInBytes"]


def test_injected_device_ids_come_from_the_where(stack: Stack) -> None:
    _upload(stack, "devices/4a77/e.parquet", ["x", "y"], [1, 2])
    _upload(stack, "devices/f71d/e.parquet", ["z"], [3])
    stack.ok(DEVICE_DDL)
    assert stack.ok(
        "SELECT device_id, count(*) AS events FROM logs.device_events "
        "WHERE device_id IN ('4a77', 'f71d', 'none') GROUP BY device_id ORDER BY device_id"
    ) == [["device_id", "events"], ["4a77", "2"], ["f71d", "1"]]
    reason = stack.failed("SELECT count(*) FROM logs.device_events WHERE device_id > '0'")
    assert reason == (
        "CONSTRAINT_VIOLATION: For the injected projected partition column device_id, the WHERE clause "
        "must contain only static equality conditions, and at least one such condition must be present."
    )


def test_a_table_with_properties_tidelake_refuses_fails_only_its_own_queries(stack: Stack) -> None:
    # the reviewer's DDL: '²' passes str.isdigit but not int(); a year a million years from now
    stack.ok(
        "CREATE EXTERNAL TABLE logs.bad_interval (x string) PARTITIONED BY (dt string) STORED AS PARQUET "
        "LOCATION 's3://tidelake-lake/bad/' TBLPROPERTIES ('projection.enabled'='true', "
        "'projection.dt.type'='integer', 'projection.dt.range'='0,5', 'projection.dt.interval'='²')"
    )
    stack.ok(
        "CREATE EXTERNAL TABLE logs.bad_range (x string) PARTITIONED BY (dt string) STORED AS PARQUET "
        "LOCATION 's3://tidelake-lake/bad/' TBLPROPERTIES ('projection.enabled'='true', "
        "'projection.dt.type'='date', 'projection.dt.format'='yyyy-MM-dd', "
        "'projection.dt.range'='2020-01-01,NOW+1000000YEARS')"
    )
    assert stack.ok("SELECT 1 AS one") == [["one"], ["1"]]
    assert stack.failed("SELECT count(*) FROM logs.bad_interval") == (
        "partition projection of column dt: projection.dt.interval '²' is not a positive integer of at "
        "most 19 digits"
    )
    assert stack.failed("SELECT count(*) FROM logs.bad_range") == (
        "partition projection of column dt: projection.dt.range 'NOW+1000000YEARS' is outside the dates "
        "tidelake reads (years 1-9999)"
    )
    stack.ok(DEVICE_DDL)
    assert stack.ok("SELECT count(*) AS n FROM logs.device_events WHERE device_id = 'none'") == [["n"], ["0"]]
    stack.ok("DROP TABLE logs.bad_interval")
    assert stack.ok("SELECT 2 AS two") == [["two"], ["2"]]
