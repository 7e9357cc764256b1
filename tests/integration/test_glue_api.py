"""The Glue Data Catalog's API over the lake, driven by boto3, the AWS CLI and awswrangler unchanged.

The server is the composed AWS endpoint (`tidelake.aws_endpoint`) with Glue's action table in front
of a stand-in for the query app, run by uvicorn in a thread on a free port. The lake is real
Parquet written as the sinks write it (`<dataset>/dt=.../hour=.../<topic>+<partition>+<offset>.parquet`),
with fixed file times, so every answer is known to the byte.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from core.lake import data_file_name
from queries.glue_api import TARGET_PREFIX, GlueService, TableSource, glue_actions
from tests.aws_endpoints import AWS_CLI, aws_cli_env, aws_client, endpoint_in_thread, stand_in_query_app
from tests.unit.queries_lake import EVENTS_SCHEMA, event
from tidelake.aws_endpoint import aws_endpoint

TOKEN = "glue-token"
#: 2019-01-22T00:00:00Z: the files' modification times count up from here, one second per file.
T0 = 1_548_115_200
#: The server's clock: created entries are dated 2026-11-30T...
NOW = 1_796_000_000.0

EVENTS_COLUMNS = [
    {"Name": "event_id", "Type": "string"},
    {"Name": "event_time", "Type": "timestamp"},
    {"Name": "visitor_id", "Type": "string"},
    {"Name": "method", "Type": "string"},
    {"Name": "url", "Type": "string"},
    {"Name": "page", "Type": "string"},
    {"Name": "referrer", "Type": "string"},
    {"Name": "status", "Type": "int"},
    {"Name": "bytes", "Type": "bigint"},
    {"Name": "user_agent", "Type": "string"},
    {"Name": "is_bot", "Type": "boolean"},
    {"Name": "source", "Type": "string"},
]
HOURS = [("2019-01-22", "00"), ("2019-01-22", "01"), ("2019-01-23", "05")]
ANOMALIES_SCHEMA = pa.schema(
    [
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("page", pa.string()),
        ("views", pa.int64()),
        ("anomaly_score", pa.float64()),
        ("tags", pa.list_(pa.string())),
    ]
)
PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "Compressed": False,
    "NumberOfBuckets": -1,
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "Parameters": {"serialization.format": "1"},
    },
    "BucketColumns": [],
    "SortColumns": [],
    "Parameters": {},
    "StoredAsSubDirectories": False,
}


def _write(path: Path, table: pa.Table, mtime: int) -> int:
    """Write `table` as the sinks do (a hidden temp name, then a rename) and date it; its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temp)
    temp.rename(path)
    os.utime(path, (mtime, mtime))
    return path.stat().st_size


def _make_lake(lake: Path) -> dict[str, int]:
    """The lake of these tests; the size of each dataset's files in bytes."""
    sizes = {"clickstream_events": 0, "page_view_anomalies": 0, "visitors": 0}
    second = 0
    for index, (day, hour) in enumerate(HOURS):
        rows = [event(f"{day}T{hour}:{m:02d}:00", f"v{m}", f"/p{m}") for m in range(index + 1)]
        folder = lake / "clickstream_events" / f"dt={day}" / f"hour={hour}"
        table = pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)
        name = data_file_name("clickstream.events", index, 1000 * index)
        sizes["clickstream_events"] += _write(folder / name, table, T0 + second)
        second += 1
    for hour in ("00", "01"):
        row = {
            "window_start": dt.datetime(2019, 1, 22, int(hour), tzinfo=dt.UTC),
            "page": "/settings/logo",
            "views": 195,
            "anomaly_score": 2.5,
            "tags": ["spike"],
        }
        folder = lake / "page_view_anomalies" / "dt=2019-01-22" / f"hour={hour}"
        table = pa.Table.from_pylist([row], schema=ANOMALIES_SCHEMA)
        name = data_file_name("analytics.page-view-anomalies", 0, int(hour))
        sizes["page_view_anomalies"] += _write(folder / name, table, T0 + second)
        second += 1
    visitors = pa.table({"visitor_id": ["v1", "v2"], "first_seen": [dt.date(2019, 1, 22)] * 2})
    sizes["visitors"] += _write(
        lake / "visitors" / "visitors+0+00000000000000000000.parquet", visitors, T0 + second
    )
    # Uploaded CSV, partitioned by region: no Parquet, so not one of the lake's tables.
    for region, rows in (("eu", "s1,12.5\ns2,3.0\n"), ("us", "s3,7.25\n")):
        (lake / "sales_csv" / f"region={region}").mkdir(parents=True)
        (lake / "sales_csv" / f"region={region}" / "sales.csv").write_text("sale_id,amount\n" + rows)
    (lake / "_errors" / "clickstream_events").mkdir(parents=True)
    (lake / "escape").symlink_to("/etc")  # a link out of the lake: never a table, never a location
    return sizes


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("glue") / "lake"
    return root, _make_lake(root)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("glue-state")


@contextlib.contextmanager
def _serve(lake: Path, state: Path) -> Iterator[tuple[str, GlueService]]:
    service = GlueService(lake, state, clock=lambda: NOW)
    app = aws_endpoint(stand_in_query_app, {TARGET_PREFIX: glue_actions(service)}, token=TOKEN)
    try:
        with endpoint_in_thread(app) as url:
            yield url, service
    finally:
        service.close()


@pytest.fixture(scope="module")
def server(lake: tuple[Path, dict[str, int]], state: Path) -> Iterator[tuple[str, GlueService]]:
    with _serve(lake[0], state) as served:
        yield served


@pytest.fixture
def glue(server: tuple[str, GlueService]):
    return aws_client("glue", server[0], key=TOKEN)


@pytest.fixture
def database(glue) -> Iterator[str]:
    """A database of this test's own (dropped afterwards with its tables)."""
    name = f"uploads_{uuid.uuid4().hex[:8]}"
    glue.create_database(DatabaseInput={"Name": name, "Description": "uploaded data"})
    yield name
    with contextlib.suppress(ClientError):
        glue.delete_database(Name=name)


def _code(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def _seconds(when: dt.datetime) -> float:
    return when.timestamp()


def _names(tables: list[dict]) -> list[str]:
    return [t["Name"] for t in tables]


def _events_table(size: int) -> dict:
    return {
        "Name": "clickstream_events",
        "DatabaseName": "default",
        "CatalogId": "000000000000",
        "Retention": 0,
        "StorageDescriptor": {
            "Columns": EVENTS_COLUMNS,
            "Location": "s3://tidelake-lake/clickstream_events/",
            **PARQUET,
        },
        "PartitionKeys": [{"Name": "dt", "Type": "date"}, {"Name": "hour", "Type": "int"}],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "typeOfData": "file",
            "EXTERNAL": "TRUE",
            "objectCount": "3",
            "recordCount": "6",
            "sizeKey": str(size),
            "averageRecordSize": str(size // 6),
        },
        "IsRegisteredWithLakeFormation": False,
    }


# -- reading the lake ---------------------------------------------------------------------------------
def test_get_databases_lists_the_lake_as_default(glue) -> None:
    answer = glue.get_databases()
    default = next(d for d in answer["DatabaseList"] if d["Name"] == "default")
    assert default == {
        "Name": "default",
        "Description": "tidelake's lake: one table per dataset folder",
        "LocationUri": "s3://tidelake-lake/",
        "Parameters": {},
        "CatalogId": "000000000000",
    }
    assert glue.get_database(Name="default")["Database"] == default
    assert glue.get_database(Name="DEFAULT")["Database"] == default  # Glue's names are lower case
    with pytest.raises(ClientError) as caught:
        glue.get_database(Name="nope")
    assert _code(caught) == ("EntityNotFoundException", "Database nope not found.")


def test_get_tables_answers_each_dataset_with_athena_types_and_parquet_storage(glue, lake) -> None:
    _, sizes = lake
    tables = glue.get_tables(DatabaseName="default")["TableList"]
    # sales_csv holds no Parquet and _errors is hidden: neither is a table of the lake
    assert _names(tables) == ["clickstream_events", "page_view_anomalies", "visitors"]
    events = tables[0]
    assert (_seconds(events.pop("CreateTime")), _seconds(events.pop("UpdateTime"))) == (T0, T0 + 2)
    assert events == _events_table(sizes["clickstream_events"])
    anomalies = tables[1]
    assert anomalies["StorageDescriptor"]["Columns"] == [
        {"Name": "window_start", "Type": "timestamp"},
        {"Name": "page", "Type": "string"},
        {"Name": "views", "Type": "bigint"},
        {"Name": "anomaly_score", "Type": "double"},
        {"Name": "tags", "Type": "array<string>"},
    ]
    assert anomalies["StorageDescriptor"]["Location"] == "s3://tidelake-lake/page_view_anomalies/"
    assert anomalies["PartitionKeys"] == [{"Name": "dt", "Type": "date"}, {"Name": "hour", "Type": "int"}]
    visitors = tables[2]
    assert visitors["StorageDescriptor"]["Columns"] == [
        {"Name": "visitor_id", "Type": "string"},
        {"Name": "first_seen", "Type": "date"},
    ]
    assert visitors["PartitionKeys"] == []
    assert visitors["Parameters"]["recordCount"] == "2"
    single = glue.get_table(DatabaseName="default", Name="clickstream_events")["Table"]
    del single["CreateTime"], single["UpdateTime"]
    assert single == _events_table(sizes["clickstream_events"])


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("*events*", ["clickstream_events"]),
        ("page.*", ["page_view_anomalies"]),
        ("visitors|clickstream_events", ["clickstream_events", "visitors"]),
        ("events", []),
        ("", ["clickstream_events", "page_view_anomalies", "visitors"]),
    ],
)
def test_get_tables_filters_names_by_pattern(glue, expression: str, names: list[str]) -> None:
    assert _names(glue.get_tables(DatabaseName="default", Expression=expression)["TableList"]) == names


def test_get_tables_pages_and_refuses_a_bad_pattern(glue) -> None:
    first = glue.get_tables(DatabaseName="default", MaxResults=2)
    assert _names(first["TableList"]) == ["clickstream_events", "page_view_anomalies"]
    second = glue.get_tables(DatabaseName="default", MaxResults=2, NextToken=first["NextToken"])
    assert _names(second["TableList"]) == ["visitors"]
    assert "NextToken" not in second
    pages = glue.get_paginator("get_tables").paginate(
        DatabaseName="default", PaginationConfig={"PageSize": 1}
    )
    assert [_names(p["TableList"]) for p in pages] == [
        ["clickstream_events"],
        ["page_view_anomalies"],
        ["visitors"],
    ]
    only = glue.get_tables(DatabaseName="default", AttributesToGet=["NAME"], Expression="visitors")
    assert only["TableList"] == [{"Name": "visitors"}]
    for bad, wanted in (
        ({"Expression": "events["}, "InvalidInputException"),
        ({"NextToken": "bm9wZQ=="}, "InvalidInputException"),
    ):
        with pytest.raises(ClientError) as caught:
            glue.get_tables(DatabaseName="default", **bad)
        assert _code(caught)[0] == wanted
    with pytest.raises(ClientError) as caught:
        glue.get_tables(DatabaseName="nope")
    assert _code(caught) == ("EntityNotFoundException", "Database nope not found.")
    # patterns a backtracking regex engine would take hours on, or overflow its parser's stack with:
    # refused before any name is matched (they were a stalled server and an HTTP 500)
    for pathological in ("(a+)+b", "(a|a?)+b", "([a-z_]+)+0", "(" * 1000, "a{1,99}" * 3):
        with pytest.raises(ClientError) as caught:
            glue.get_tables(DatabaseName="default", Expression=pathological)
        assert _code(caught)[0] == "InvalidInputException", pathological
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as caught:
        glue.get_table(DatabaseName="default", Name="sales_csv")
    assert _code(caught) == ("EntityNotFoundException", "Table sales_csv not found.")


def _partition(day: str, hour: str, when: int) -> dict:
    return {
        "Values": [day, hour],
        "DatabaseName": "default",
        "TableName": "clickstream_events",
        "CatalogId": "000000000000",
        "CreationTime": when,
        "StorageDescriptor": {
            "Columns": EVENTS_COLUMNS,
            "Location": f"s3://tidelake-lake/clickstream_events/dt={day}/hour={hour}/",
            **PARQUET,
        },
        "Parameters": {},
    }


def _plain(partitions: list[dict]) -> list[dict]:
    return [{**p, "CreationTime": int(_seconds(p["CreationTime"]))} for p in partitions]


def test_get_partitions_answers_one_partition_per_hive_folder(glue) -> None:
    answer = glue.get_partitions(DatabaseName="default", TableName="clickstream_events")
    assert _plain(answer["Partitions"]) == [
        _partition("2019-01-22", "00", T0),
        _partition("2019-01-22", "01", T0 + 1),
        _partition("2019-01-23", "05", T0 + 2),
    ]
    assert "NextToken" not in answer
    one = glue.get_partition(
        DatabaseName="default", TableName="clickstream_events", PartitionValues=["2019-01-22", "01"]
    )
    assert _plain([one["Partition"]]) == [_partition("2019-01-22", "01", T0 + 1)]
    with pytest.raises(ClientError) as caught:
        glue.get_partition(
            DatabaseName="default", TableName="clickstream_events", PartitionValues=["2019-01-22", "1"]
        )
    assert _code(caught) == ("EntityNotFoundException", "Cannot find partition.")
    assert glue.get_partitions(DatabaseName="default", TableName="visitors")["Partitions"] == []


@pytest.mark.parametrize(
    ("expression", "values"),
    [
        ("dt = '2019-01-22' AND hour > 0", [["2019-01-22", "01"]]),
        ("hour IN (0, 5)", [["2019-01-22", "00"], ["2019-01-23", "05"]]),
        ("dt BETWEEN '2019-01-22' AND '2019-01-22'", [["2019-01-22", "00"], ["2019-01-22", "01"]]),
        ("NOT dt = '2019-01-22' OR hour = 1", [["2019-01-22", "01"], ["2019-01-23", "05"]]),
        ("dt > '2019-01-23'", []),
    ],
)
def test_get_partitions_filters_by_expression(glue, expression: str, values: list[list[str]]) -> None:
    answer = glue.get_partitions(
        DatabaseName="default", TableName="clickstream_events", Expression=expression
    )
    assert [p["Values"] for p in answer["Partitions"]] == values


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("page = '/a'", "Unknown column 'page' (partition keys: dt, hour)"),
        (
            "dt = 'yesterday'",
            "'yesterday' is not a valid date for partition key 'dt': Invalid isoformat string: 'yesterday'",
        ),
        ("hour LIKE '0%'", "int partition key 'hour' doesn't support operation 'LIKE'"),
    ],
)
def test_get_partitions_refuses_what_glue_cannot_filter(glue, expression: str, message: str) -> None:
    with pytest.raises(ClientError) as caught:
        glue.get_partitions(DatabaseName="default", TableName="clickstream_events", Expression=expression)
    assert _code(caught) == ("InvalidInputException", message)
    for unsupported in ("length(dt) = 10", "dt = '2019-01-22'; DROP TABLE clickstream_events"):
        with pytest.raises(ClientError) as caught:
            glue.get_partitions(
                DatabaseName="default", TableName="clickstream_events", Expression=unsupported
            )
        assert _code(caught)[0] == "InvalidInputException"
        assert _code(caught)[1].startswith(f"Unsupported expression '{unsupported}'")


def test_get_partitions_pages_segments_and_leaves_out_columns(glue) -> None:
    first = glue.get_partitions(DatabaseName="default", TableName="clickstream_events", MaxResults=2)
    assert [p["Values"] for p in first["Partitions"]] == [["2019-01-22", "00"], ["2019-01-22", "01"]]
    rest = glue.get_partitions(
        DatabaseName="default", TableName="clickstream_events", MaxResults=2, NextToken=first["NextToken"]
    )
    assert [p["Values"] for p in rest["Partitions"]] == [["2019-01-23", "05"]]
    assert "NextToken" not in rest
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName="default",
        TableName="clickstream_events",
        Expression="hour < 5",
        PaginationConfig={"PageSize": 1},
    )
    assert [[p["Values"] for p in page["Partitions"]] for page in pages] == [
        [["2019-01-22", "00"]],
        [["2019-01-22", "01"]],
    ]
    segments = [
        [
            p["Values"]
            for p in glue.get_partitions(
                DatabaseName="default",
                TableName="clickstream_events",
                Segment={"SegmentNumber": n, "TotalSegments": 3},
            )["Partitions"]
        ]
        for n in range(3)
    ]
    assert sorted(v for segment in segments for v in segment) == [
        ["2019-01-22", "00"],
        ["2019-01-22", "01"],
        ["2019-01-23", "05"],
    ]
    bare = glue.get_partitions(
        DatabaseName="default", TableName="clickstream_events", ExcludeColumnSchema=True
    )
    assert ["Columns" in p["StorageDescriptor"] for p in bare["Partitions"]] == [False, False, False]
    assert (
        bare["Partitions"][0]["StorageDescriptor"]["Location"]
        == "s3://tidelake-lake/clickstream_events/dt=2019-01-22/hour=00/"
    )


def test_a_new_partition_folder_is_a_partition_at_once(glue, lake) -> None:
    root, _ = lake
    folder = root / "page_view_anomalies" / "dt=2019-01-23" / "hour=07"
    row = {
        "window_start": dt.datetime(2019, 1, 23, 7, tzinfo=dt.UTC),
        "page": "/",
        "views": 1,
        "anomaly_score": 0.5,
        "tags": [],
    }
    path = folder / data_file_name("analytics.page-view-anomalies", 1, 7)
    _write(path, pa.Table.from_pylist([row], schema=ANOMALIES_SCHEMA), T0 + 100)
    try:
        answer = glue.get_partitions(
            DatabaseName="default", TableName="page_view_anomalies", Expression="dt = '2019-01-23'"
        )
        assert [(p["Values"], p["StorageDescriptor"]["Location"]) for p in answer["Partitions"]] == [
            (["2019-01-23", "07"], "s3://tidelake-lake/page_view_anomalies/dt=2019-01-23/hour=07/")
        ]
    finally:
        path.unlink()
        folder.rmdir()
        folder.parent.rmdir()


# -- writing: tables over uploaded data ----------------------------------------------------------------
SALES_INPUT = {
    "Name": "Sales",
    "Description": "uploaded CSV",
    "StorageDescriptor": {
        "Columns": [{"Name": "sale_id", "Type": "string"}, {"Name": "amount", "Type": "double"}],
        "Location": "s3://tidelake-lake/sales_csv/",
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            "Parameters": {"field.delim": ",", "skip.header.line.count": "1"},
        },
    },
    "PartitionKeys": [{"Name": "region", "Type": "string"}],
    "TableType": "EXTERNAL_TABLE",
    "Parameters": {"classification": "csv"},
}


def _region(region: str, location: str | None = None) -> dict:
    return {
        "Values": [region],
        "StorageDescriptor": {"Location": location or f"s3://tidelake-lake/sales_csv/region={region}/"},
    }


def test_create_database_and_table_over_uploaded_csv(glue, database: str, server, lake) -> None:
    root, _ = lake
    got = glue.get_database(Name=database)["Database"]
    assert (got.pop("Name"), _seconds(got.pop("CreateTime")), got) == (
        database,
        NOW,
        {"Description": "uploaded data", "Parameters": {}, "CatalogId": "000000000000"},
    )
    assert database in [d["Name"] for d in glue.get_databases()["DatabaseList"]]
    glue.create_table(DatabaseName=database, TableInput=SALES_INPUT)
    table = glue.get_table(DatabaseName=database, Name="SALES")["Table"]
    assert (_seconds(table.pop("CreateTime")), _seconds(table.pop("UpdateTime"))) == (NOW, NOW)
    assert table == {
        **SALES_INPUT,
        "Name": "sales",
        "DatabaseName": database,
        "CatalogId": "000000000000",
        "IsRegisteredWithLakeFormation": False,
        "Retention": 0,
    }
    assert _names(glue.get_tables(DatabaseName=database)["TableList"]) == ["sales"]

    answer = glue.batch_create_partition(
        DatabaseName=database,
        TableName="sales",
        PartitionInputList=[
            _region("eu"),
            _region("us"),
            _region("eu"),
            {"Values": ["eu", "2019"], "StorageDescriptor": {"Location": "s3://tidelake-lake/sales_csv/x/"}},
            _region("ap", "s3://somebody-elses-bucket/sales/"),
            _region("za", "s3://tidelake-lake/sales_csv/../../etc/"),
        ],
    )
    assert [(e["PartitionValues"], e["ErrorDetail"]["ErrorCode"]) for e in answer["Errors"]] == [
        (["eu"], "AlreadyExistsException"),
        (["eu", "2019"], "InvalidInputException"),
        (["ap"], "AccessDeniedException"),
        (["za"], "InvalidInputException"),
    ]
    assert answer["Errors"][0]["ErrorDetail"]["ErrorMessage"] == "Partition already exists."
    assert answer["Errors"][1]["ErrorDetail"]["ErrorMessage"] == (
        "The number of partition keys do not match the number of partition values."
    )
    partitions = glue.get_partitions(DatabaseName=database, TableName="sales")["Partitions"]
    assert [
        (p["Values"], p["StorageDescriptor"]["Location"], _seconds(p["CreationTime"])) for p in partitions
    ] == [
        (["eu"], "s3://tidelake-lake/sales_csv/region=eu/", NOW),
        (["us"], "s3://tidelake-lake/sales_csv/region=us/", NOW),
    ]
    assert partitions[0]["Parameters"] == {}
    only = glue.get_partitions(DatabaseName=database, TableName="sales", Expression="region LIKE 'u%'")
    assert [p["Values"] for p in only["Partitions"]] == [["us"]]
    glue.create_partition(DatabaseName=database, TableName="sales", PartitionInput=_region("ap"))
    with pytest.raises(ClientError) as caught:
        glue.create_partition(DatabaseName=database, TableName="sales", PartitionInput=_region("ap"))
    assert _code(caught) == ("AlreadyExistsException", "Partition already exists.")
    glue.delete_partition(DatabaseName=database, TableName="sales", PartitionValues=["ap"])
    with pytest.raises(ClientError) as caught:
        glue.delete_partition(DatabaseName=database, TableName="sales", PartitionValues=["ap"])
    assert _code(caught) == ("EntityNotFoundException", "Cannot find partition.")

    # what a query engine would read for it
    assert server[1].table_source(database, "sales") == TableSource(
        database=database,
        name="sales",
        location=root / "sales_csv",
        format="csv",
        columns=[("sale_id", "string"), ("amount", "double")],
        partition_keys=[("region", "string")],
        serde_parameters={"field.delim": ",", "skip.header.line.count": "1"},
        table_parameters={"classification": "csv"},
        partitions=[(["eu"], root / "sales_csv" / "region=eu"), (["us"], root / "sales_csv" / "region=us")],
    )
    source = server[1].table_source("default", "clickstream_events")
    assert (source.location, source.format, source.partition_keys) == (
        root / "clickstream_events",
        "parquet",
        [("dt", "date"), ("hour", "int")],
    )
    assert source.partitions[0] == (
        ["2019-01-22", "00"],
        root / "clickstream_events" / "dt=2019-01-22" / "hour=00",
    )

    glue.delete_table(DatabaseName=database, Name="sales")
    with pytest.raises(ClientError) as caught:
        glue.get_table(DatabaseName=database, Name="sales")
    assert _code(caught) == ("EntityNotFoundException", "Table sales not found.")
    assert glue.get_tables(DatabaseName=database)["TableList"] == []
    glue.delete_database(Name=database)
    with pytest.raises(ClientError) as caught:
        glue.get_database(Name=database)
    assert _code(caught) == ("EntityNotFoundException", f"Database {database} not found.")


def test_update_table_and_the_batch_actions(glue, database: str) -> None:
    glue.create_table(DatabaseName=database, TableInput=SALES_INPUT)
    columns = [{"Name": "sale_id", "Type": "string"}, {"Name": "amount", "Type": "decimal(10,2)"}]
    changed = {
        **SALES_INPUT,
        "Description": "amounts as decimals",
        "StorageDescriptor": {**SALES_INPUT["StorageDescriptor"], "Columns": columns},
    }
    glue.batch_create_partition(
        DatabaseName=database, TableName="sales", PartitionInputList=[_region("eu"), _region("us")]
    )
    glue.update_table(DatabaseName=database, TableInput=changed)
    table = glue.get_table(DatabaseName=database, Name="sales")["Table"]
    assert (table["Description"], table["StorageDescriptor"]["Columns"]) == ("amounts as decimals", columns)
    assert (_seconds(table["CreateTime"]), _seconds(table["UpdateTime"])) == (NOW, NOW)
    for call, expected in (
        (
            lambda: glue.update_table(DatabaseName=database, TableInput={**changed, "Name": "nope"}),
            ("EntityNotFoundException", "Table nope not found."),
        ),
        (
            lambda: glue.update_table(DatabaseName="default", TableInput={"Name": "visitors"}),
            ("InvalidInputException", "Table visitors is the lake's dataset: its definition is its files."),
        ),
        (
            lambda: glue.update_table(
                DatabaseName=database,
                TableInput={**changed, "StorageDescriptor": {"Location": "s3://elsewhere/sales/"}},
            ),
            (
                "AccessDeniedException",
                "Insufficient Lake Formation permission(s) on s3://elsewhere/sales/: the only data location is "
                "the lake, s3://tidelake-lake/",
            ),
        ),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert _code(caught) == expected

    got = glue.batch_get_partition(
        DatabaseName=database,
        TableName="sales",
        PartitionsToGet=[{"Values": ["us"]}, {"Values": ["nope"]}, {"Values": ["eu"]}],
    )
    assert ([p["Values"] for p in got["Partitions"]], got["UnprocessedKeys"]) == ([["us"], ["eu"]], [])
    lake_got = glue.batch_get_partition(
        DatabaseName="default",
        TableName="clickstream_events",
        PartitionsToGet=[{"Values": ["2019-01-23", "05"]}],
    )
    assert [p["StorageDescriptor"]["Location"] for p in lake_got["Partitions"]] == [
        "s3://tidelake-lake/clickstream_events/dt=2019-01-23/hour=05/"
    ]
    deleted = glue.batch_delete_partition(
        DatabaseName=database,
        TableName="sales",
        PartitionsToDelete=[{"Values": ["eu"]}, {"Values": ["nope"]}],
    )
    assert deleted["Errors"] == [
        {
            "PartitionValues": ["nope"],
            "ErrorDetail": {"ErrorCode": "EntityNotFoundException", "ErrorMessage": "Cannot find partition."},
        }
    ]
    assert [
        p["Values"] for p in glue.get_partitions(DatabaseName=database, TableName="sales")["Partitions"]
    ] == [["us"]]

    dropped = glue.batch_delete_table(DatabaseName=database, TablesToDelete=["sales", "nope"])
    assert dropped["Errors"] == [
        {
            "TableName": "nope",
            "ErrorDetail": {"ErrorCode": "EntityNotFoundException", "ErrorMessage": "Table nope not found."},
        }
    ]
    assert glue.get_tables(DatabaseName=database)["TableList"] == []
    # a table made again under the same name starts without the old partitions
    glue.create_table(DatabaseName=database, TableInput=SALES_INPUT)
    assert glue.get_partitions(DatabaseName=database, TableName="sales")["Partitions"] == []
    kept = glue.batch_delete_table(DatabaseName="default", TablesToDelete=["visitors"])
    assert [(e["TableName"], e["ErrorDetail"]["ErrorCode"]) for e in kept["Errors"]] == [
        ("visitors", "InvalidInputException")
    ]


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("s3://other-bucket/sales/", "AccessDeniedException"),
        ("file:///etc/", "InvalidInputException"),
        ("/etc", "InvalidInputException"),
        ("s3://tidelake-lake/../etc/", "InvalidInputException"),
        ("s3://tidelake-lake/sales_csv/./../../", "InvalidInputException"),
        ("s3://tidelake-lake//etc/", "InvalidInputException"),
        ("s3://tidelake-lake/escape/", "InvalidInputException"),  # a symlink out of the lake
        ("s3://tidelake-lake/_sinks/_owners/", "InvalidInputException"),  # the sinks' own state
        ("s3://tidelake-lake/_sinks/", "InvalidInputException"),
        ("s3://tidelake-lake/sales/.hidden/", "InvalidInputException"),  # a file being written
    ],
)
def test_locations_outside_the_lake_are_refused(glue, database: str, location: str, code: str) -> None:
    table = {**SALES_INPUT, "StorageDescriptor": {**SALES_INPUT["StorageDescriptor"], "Location": location}}
    with pytest.raises(ClientError) as caught:
        glue.create_table(DatabaseName=database, TableInput=table)
    assert _code(caught)[0] == code
    with pytest.raises(ClientError) as caught:
        glue.create_database(DatabaseInput={"Name": f"{database}_x", "LocationUri": location})
    assert _code(caught)[0] == code
    assert glue.get_tables(DatabaseName=database)["TableList"] == []


def test_write_errors_are_glues(glue, database: str) -> None:
    cases = [
        (
            lambda: glue.create_database(DatabaseInput={"Name": database}),
            ("AlreadyExistsException", "Database already exists."),
        ),
        (
            lambda: glue.create_database(DatabaseInput={"Name": "Default"}),
            ("AlreadyExistsException", "Database already exists."),
        ),
        (
            lambda: glue.create_table(DatabaseName="nope", TableInput=SALES_INPUT),
            ("EntityNotFoundException", "Database nope not found."),
        ),
        (
            lambda: glue.create_table(DatabaseName="default", TableInput={"Name": "clickstream_events"}),
            ("AlreadyExistsException", "Table already exists."),
        ),
        (
            lambda: glue.delete_table(DatabaseName=database, Name="nope"),
            ("EntityNotFoundException", "Table nope not found."),
        ),
        (lambda: glue.delete_database(Name="nope"), ("EntityNotFoundException", "Database nope not found.")),
        (
            lambda: glue.delete_database(Name="default"),
            ("InvalidInputException", "The database default is the lake itself and cannot be deleted."),
        ),
        (
            lambda: glue.delete_table(DatabaseName="default", Name="visitors"),
            (
                "InvalidInputException",
                "Table visitors is the lake's dataset folder visitors/; it is listed while it holds files (remove the folder to drop it).",
            ),
        ),
        (
            lambda: glue.batch_create_partition(
                DatabaseName="default", TableName="visitors", PartitionInputList=[_region("eu")]
            ),
            (
                "InvalidInputException",
                "Table visitors is the lake's dataset: its partitions are its folders and cannot be added.",
            ),
        ),
        (
            lambda: glue.get_databases(CatalogId="123456789012"),
            (
                "AccessDeniedException",
                "Catalog 123456789012 is not this account's (000000000000); cross-account catalogs are not shared here",
            ),
        ),
    ]
    for call, expected in cases:
        with pytest.raises(ClientError) as caught:
            call()
        assert _code(caught) == expected
    glue.create_table(DatabaseName=database, TableInput=SALES_INPUT)
    with pytest.raises(ClientError) as caught:
        glue.create_table(DatabaseName=database, TableInput={**SALES_INPUT, "Name": "sales"})
    assert _code(caught) == ("AlreadyExistsException", "Table already exists.")


def test_malformed_requests_get_aws_400_errors(server) -> None:
    raw = aws_client("glue", server[0], key=TOKEN, validate=False)
    with pytest.raises(ClientError) as caught:
        raw.get_tables(DatabaseName="default", MaxResults=0)
    assert _code(caught) == (
        "ValidationException",
        "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
    )
    with pytest.raises(ClientError) as caught:
        raw.get_tables(DatabaseName="")
    assert _code(caught)[0] == "ValidationException"
    with pytest.raises(ClientError) as caught:
        raw.create_table(DatabaseName="default")
    assert _code(caught) == (
        "InvalidInputException",
        "TableInput is required (open table formats, OpenTableFormatInput, are not supported).",
    )
    with pytest.raises(ClientError) as caught:
        raw.get_partitions(DatabaseName="default", TableName="clickstream_events", MaxResults="2")
    assert _code(caught)[0] == "SerializationException"
    with pytest.raises(ClientError) as caught:
        aws_client("glue", server[0], key="wrong").get_databases()
    assert _code(caught)[0] == "UnrecognizedClientException"


def test_created_entries_survive_a_restart(lake, tmp_path: Path) -> None:
    root, _ = lake
    state = tmp_path / "state"
    with _serve(root, state) as (url, _):
        glue = aws_client("glue", url, key=TOKEN)
        glue.create_database(DatabaseInput={"Name": "kept", "LocationUri": "s3://tidelake-lake/sales_csv/"})
        glue.create_table(DatabaseName="kept", TableInput=SALES_INPUT)
        glue.batch_create_partition(
            DatabaseName="kept", TableName="sales", PartitionInputList=[_region("eu")]
        )
        before = (
            glue.get_databases()["DatabaseList"],
            glue.get_tables(DatabaseName="kept")["TableList"],
            glue.get_partitions(DatabaseName="kept", TableName="sales")["Partitions"],
        )
    with _serve(root, state) as (url, _):
        glue = aws_client("glue", url, key=TOKEN)
        after = (
            glue.get_databases()["DatabaseList"],
            glue.get_tables(DatabaseName="kept")["TableList"],
            glue.get_partitions(DatabaseName="kept", TableName="sales")["Partitions"],
        )
    assert [d["Name"] for d in after[0]] == ["default", "kept"]
    assert after == before
    assert [p["Values"] for p in after[2]] == [["eu"]]


# -- other clients ---------------------------------------------------------------------------------------
def _cli(endpoint: str, *args: str) -> dict:
    env = aws_cli_env(TOKEN)
    aws = AWS_CLI
    done = subprocess.run(
        [aws, "--endpoint-url", endpoint, "glue", *args, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_aws_cli_lists_tables_and_partitions(server, lake) -> None:
    _, sizes = lake
    tables = _cli(server[0], "get-tables", "--database-name", "default")["TableList"]
    assert _names(tables) == ["clickstream_events", "page_view_anomalies", "visitors"]
    events = {k: v for k, v in tables[0].items() if k not in ("CreateTime", "UpdateTime")}
    assert events == _events_table(sizes["clickstream_events"])
    partitions = _cli(
        server[0], "get-partitions", "--database-name", "default", "--table-name", "clickstream_events",
        "--expression", "dt = '2019-01-22' AND hour > 0",
    )["Partitions"]  # fmt: skip
    assert [(p["Values"], p["StorageDescriptor"]["Location"]) for p in partitions] == [
        (["2019-01-22", "01"], "s3://tidelake-lake/clickstream_events/dt=2019-01-22/hour=01/")
    ]


@pytest.fixture
def wrangler(server) -> Iterator[tuple[object, boto3.Session]]:
    try:
        import awswrangler as wr
    except ImportError:  # a real client the lock pins: missing means a stale venv, never a skip
        pytest.fail(
            "awswrangler is not installed: it is in requirements.lock; run `make install`", pytrace=False
        )

    before = wr.config.glue_endpoint_url
    wr.config.glue_endpoint_url = server[0]
    session = boto3.Session(aws_access_key_id=TOKEN, aws_secret_access_key="x", region_name="us-east-1")
    try:
        yield wr, session
    finally:
        wr.config.glue_endpoint_url = before


def test_awswrangler_reads_the_catalog(wrangler) -> None:
    wr, session = wrangler
    tables = wr.catalog.tables(database="default", boto3_session=session)
    assert tables["Table"].tolist() == ["clickstream_events", "page_view_anomalies", "visitors"]
    assert tables["Database"].tolist() == ["default"] * 3
    assert tables["Partitions"].tolist() == ["dt, hour", "dt, hour", ""]
    assert wr.catalog.tables(database="default", name_contains="events", boto3_session=session)[
        "Table"
    ].tolist() == ["clickstream_events"]
    assert wr.catalog.get_table_types(
        database="default", table="page_view_anomalies", boto3_session=session
    ) == {
        "window_start": "timestamp",
        "page": "string",
        "views": "bigint",
        "anomaly_score": "double",
        "tags": "array<string>",
        "dt": "date",
        "hour": "int",
    }
    assert wr.catalog.get_partitions(
        database="default", table="clickstream_events", boto3_session=session
    ) == {
        "s3://tidelake-lake/clickstream_events/dt=2019-01-22/hour=00/": ["2019-01-22", "00"],
        "s3://tidelake-lake/clickstream_events/dt=2019-01-22/hour=01/": ["2019-01-22", "01"],
        "s3://tidelake-lake/clickstream_events/dt=2019-01-23/hour=05/": ["2019-01-23", "05"],
    }
    assert wr.catalog.get_partitions(
        database="default", table="clickstream_events", expression="hour = 5", boto3_session=session
    ) == {"s3://tidelake-lake/clickstream_events/dt=2019-01-23/hour=05/": ["2019-01-23", "05"]}
    assert wr.catalog.get_table_location(database="default", table="visitors", boto3_session=session) == (
        "s3://tidelake-lake/visitors/"
    )
    assert "default" in wr.catalog.databases(boto3_session=session)["Database"].tolist()


def test_awswrangler_registers_a_csv_table_over_uploaded_data(wrangler, server, lake) -> None:
    wr, session = wrangler
    root, _ = lake
    name = f"wr_{uuid.uuid4().hex[:8]}"
    wr.catalog.create_database(name, description="made by awswrangler", boto3_session=session)
    try:
        wr.catalog.create_csv_table(
            database=name,
            table="sales",
            path="s3://tidelake-lake/sales_csv/",
            columns_types={"sale_id": "string", "amount": "double"},
            partitions_types={"region": "string"},
            skip_header_line_count=1,
            boto3_session=session,
        )
        wr.catalog.add_csv_partitions(
            database=name,
            table="sales",
            partitions_values={
                "s3://tidelake-lake/sales_csv/region=eu/": ["eu"],
                "s3://tidelake-lake/sales_csv/region=us/": ["us"],
            },
            boto3_session=session,
        )
        assert wr.catalog.get_csv_partitions(database=name, table="sales", boto3_session=session) == {
            "s3://tidelake-lake/sales_csv/region=eu/": ["eu"],
            "s3://tidelake-lake/sales_csv/region=us/": ["us"],
        }
        assert wr.catalog.get_table_types(database=name, table="sales", boto3_session=session) == {
            "sale_id": "string",
            "amount": "double",
            "region": "string",
        }
        source = server[1].table_source(name, "sales")
        assert (source.location, source.format, source.table_parameters["skip.header.line.count"]) == (
            root / "sales_csv",
            "csv",
            "1",
        )
        assert [values for values, _ in source.partitions] == [["eu"], ["us"]]
        with pytest.raises(ClientError) as caught:
            wr.catalog.create_csv_table(
                database=name,
                table="stolen",
                path="s3://someone-else/data/",
                columns_types={"a": "string"},
                boto3_session=session,
            )
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
        assert wr.catalog.delete_table_if_exists(database=name, table="sales", boto3_session=session) is True
        assert wr.catalog.does_table_exist(database=name, table="sales", boto3_session=session) is False
    finally:
        wr.catalog.delete_database(name, boto3_session=session)
    assert name not in wr.catalog.databases(boto3_session=session)["Database"].tolist()
