"""Partition projection (Athena's "Partition projection with Amazon Athena"): values computed from
table properties, narrowed by the WHERE before any folder is read, over real Parquet and DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from queries.engine import Engine
from queries.glue_api import CreateDatabaseInput, CreateTableInput, GlueService
from queries.glue_projection import ProjectionError, parse_projection
from queries.projection_filters import projection_filters

NOW = datetime(2024, 3, 5, 13, 42, 7, tzinfo=UTC)


def _values(
    params: dict[str, str], keys: list[tuple[str, str]], where: dict | None = None
) -> list[list[str]]:
    projection = parse_projection(params, keys)
    assert projection is not None
    return [p.path_values for p in projection.partitions(where or {}, NOW)]


def test_integer_range_interval_and_digits() -> None:
    params = {
        "projection.enabled": "true",
        "projection.n.type": " Integer ",
        "projection.n.range": "0001,9",
        "projection.n.interval": "4",
        "projection.n.digits": "3",
    }
    assert _values(params, [("n", "int")]) == [["001"], ["005"], ["009"]]
    assert _values(params, [("n", "int")], {"n": [(">", 1), ("<=", 5)]}) == [["005"]]


def test_enum_keeps_white_space_and_filters_in_string_order() -> None:
    params = {
        "projection.enabled": "TRUE",
        "projection.r.type": "enum",
        "projection.r.values": "us-east-1, eu-west-1",
    }
    assert _values(params, [("r", "string")]) == [["us-east-1"], [" eu-west-1"]]
    assert _values(params, [("r", "string")], {"r": [("in", ("us-east-1", "x"))]}) == [["us-east-1"]]


def test_date_range_with_now_arithmetic_is_truncated_to_the_format() -> None:
    params = {
        "projection.enabled": "true",
        "projection.dh.type": "date",
        "projection.dh.format": "yyyy/MM/dd/HH",
        "projection.dh.range": "NOW-2HOURS, NOW",
        "projection.dh.interval": "1",
        "projection.dh.interval.unit": "hours",
    }
    assert _values(params, [("dh", "string")]) == [["2024/03/05/11"], ["2024/03/05/12"], ["2024/03/05/13"]]
    assert _values(params, [("dh", "string")], {"dh": [(">=", "2024/03/05/12")]}) == [
        ["2024/03/05/12"],
        ["2024/03/05/13"],
    ]


def test_date_months_default_unit_and_date_typed_column() -> None:
    months = {
        "projection.enabled": "true",
        "projection.m.type": "date",
        "projection.m.format": "yyyy-MM",
        "projection.m.range": "2023-11,NOW+1MONTH",
    }
    assert _values(months, [("m", "string")]) == [
        ["2023-11"],
        ["2023-12"],
        ["2024-01"],
        ["2024-02"],
        ["2024-03"],
        ["2024-04"],
    ]
    days = {
        "projection.enabled": "true",
        "projection.d.type": "date",
        "projection.d.format": "dd-MM-yyyy",
        "projection.d.range": "28-02-2024,NOW",
        "projection.d.interval": "2",
    }
    projection = parse_projection(days, [("d", "date")])
    assert projection is not None
    chosen = projection.partitions({"d": [(">=", date(2024, 3, 1))]}, NOW)
    assert [(p.path_values, p.column_values) for p in chosen] == [
        (["01-03-2024"], ["2024-03-01"]),
        (["03-03-2024"], ["2024-03-03"]),
        (["05-03-2024"], ["2024-03-05"]),
    ]


def test_injected_needs_an_equality_and_gives_its_values() -> None:
    params = {"projection.enabled": "true", "projection.device.type": "injected"}
    assert _values(params, [("device", "string")], {"device": [("in", ("b", "a", "b"))]}) == [["b"], ["a"]]
    with pytest.raises(
        ProjectionError, match=r"^CONSTRAINT_VIOLATION: For the injected projected partition column device"
    ):
        _values(params, [("device", "string")])
    with pytest.raises(ProjectionError, match="CONSTRAINT_VIOLATION"):
        _values(params, [("device", "string")], {"device": [(">", "a")]})


def test_bad_properties_name_the_property() -> None:
    base = {"projection.enabled": "true"}
    cases = [
        ({}, "projection.k.type is missing"),
        ({"projection.k.type": "list"}, "'list' is not enum, integer, date or injected"),
        (
            {"projection.k.type": "integer", "projection.k.range": "5"},
            "projection.k.range '5' is not a list of 2",
        ),
        ({"projection.k.type": "integer", "projection.k.range": "9,1"}, "is not min <= max"),
        (
            {"projection.k.type": "integer", "projection.k.range": "1,2", "projection.k.interval": "0"},
            "interval '0' is not a positive",
        ),
        ({"projection.k.type": "date", "projection.k.range": "2024,NOW"}, "projection.k.format is required"),
        (
            {
                "projection.k.type": "date",
                "projection.k.format": "yyyy-MM-dd HH",
                "projection.k.range": "2024-01-01 00,NOW",
            },
            "interval.unit is required",
        ),
        (
            {
                "projection.k.type": "date",
                "projection.k.format": "yyyy-MM-dd",
                "projection.k.range": "2024/01/01,NOW",
            },
            "'2024/01/01' is neither a date",
        ),
        (
            {
                "projection.k.type": "date",
                "projection.k.format": "yyyy-MM-dd EEE",
                "projection.k.range": "x,NOW",
            },
            "pattern letter 'E'",
        ),
        ({"projection.k.type": "enum"}, "projection.k.values is required"),
        (
            {"projection.k.type": "injected", "storage.location.template": "s3://tidelake-lake/x/"},
            "no ${k} placeholder",
        ),
    ]
    for extra, message in cases:
        with pytest.raises(ProjectionError, match=r"partition projection|placeholder") as caught:
            parse_projection({**base, **extra}, [("k", "string")])
        assert message in str(caught.value), (extra, str(caught.value))
    assert (
        parse_projection({"projection.enabled": "false", "projection.k.type": "nonsense"}, [("k", "string")])
        is None
    )


def test_filters_read_from_the_where_of_the_select_that_reads_the_table() -> None:
    tables = {("logs", "ev"), ("default", "raw")}
    sql = (
        "SELECT * FROM logs.ev AS e JOIN other o ON e.x = o.x "
        "WHERE e.dt BETWEEN '2024-01-01' AND '2024-01-03' AND 3 < e.h AND e.r IN ('a', 'b') "
        "AND (e.n = -2) AND e.d = DATE '2024-02-01' AND dt = 'unqualified, in a join' AND e.k = ? OR FALSE"
    )
    # a top-level OR narrows nothing: the table is read with no constraint
    assert projection_filters(sql, tables, "default", ["p"]) == {("logs", "ev"): [{}]}
    sql = sql.removesuffix(" OR FALSE")
    assert projection_filters(sql, tables, "default", ["p"]) == {
        ("logs", "ev"): [
            {
                "dt": [(">=", "2024-01-01"), ("<=", "2024-01-03")],
                "h": [(">", 3)],
                "r": [("in", ("a", "b"))],
                "n": [("=", -2)],
                "d": [("=", date(2024, 2, 1))],
                "k": [("=", "p")],
            }
        ]
    }
    bare = "WITH raw AS (SELECT 1) SELECT * FROM raw; "
    assert projection_filters(bare, tables, "default") == {}  # a CTE of that name is not the table
    twice = "SELECT * FROM raw WHERE dt = 'a' UNION ALL SELECT * FROM main.raw"
    assert projection_filters(twice, tables) == {("default", "raw"): [{"dt": [("=", "a")]}, {}]}
    assert projection_filters("SELECT * FROM ev WHERE h = 1", tables, "logs") == {
        ("logs", "ev"): [{"h": [("=", 1)]}]
    }


# -- over real Parquet and DuckDB ------------------------------------------------------------------
def _parquet(folder: Path, rows: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"v": rows}), folder / "part-0.parquet")


@pytest.fixture
def glue(tmp_path: Path) -> Iterator[tuple[GlueService, Engine]]:
    lake = tmp_path / "lake"
    lake.mkdir()
    service = GlueService(lake, tmp_path / "state")
    engine = Engine(lake, clock=lambda: NOW)
    engine.attach_glue(service.stored_sources)
    yield service, engine
    engine.close()
    service.close()


def _create(
    service: GlueService, name: str, keys: list[tuple[str, str]], params: dict[str, str], location: str
) -> None:
    body = {
        "DatabaseName": "logs",
        "TableInput": {
            "Name": name,
            "StorageDescriptor": {"Columns": [{"Name": "v", "Type": "bigint"}], "Location": location},
            "PartitionKeys": [{"Name": k, "Type": t} for k, t in keys],
            "Parameters": {"classification": "parquet", **params},
        },
    }
    service.create_table(CreateTableInput.model_validate(body))


def test_a_projected_table_reads_only_the_partitions_its_where_selects(
    glue: tuple[GlueService, Engine], tmp_path: Path
) -> None:
    service, engine = glue
    service.create_database(CreateDatabaseInput.model_validate({"DatabaseInput": {"Name": "logs"}}))
    lake = tmp_path / "lake"
    _parquet(lake / "firehose" / "2024" / "03" / "05" / "12", [1, 2])
    _parquet(lake / "firehose" / "2024" / "03" / "05" / "13", [3])
    _parquet(lake / "firehose" / "2024" / "03" / "04" / "23", [100])  # before the projected range
    _create(
        service,
        "ev",
        [("datehour", "string")],
        {
            "projection.enabled": "true",
            "projection.datehour.type": "date",
            "projection.datehour.format": "yyyy/MM/dd/HH",
            "projection.datehour.range": "NOW-3HOURS,NOW",
            "projection.datehour.interval.unit": "HOURS",
            "storage.location.template": "s3://tidelake-lake/firehose/${datehour}/",
        },
        "s3://tidelake-lake/firehose/",
    )
    every = engine.run("SELECT datehour, sum(v) AS s FROM logs.ev GROUP BY 1 ORDER BY 1").table.to_pylist()
    assert every == [{"datehour": "2024/03/05/12", "s": 3}, {"datehour": "2024/03/05/13", "s": 3}]
    one = engine.run("SELECT sum(v) AS s FROM logs.ev WHERE datehour = '2024/03/05/13'")
    assert one.table.to_pylist() == [{"s": 3}]
    # only the selected partition's file was opened: fewer bytes than reading both
    both = engine.run("SELECT sum(v) AS s FROM logs.ev")
    assert 0 < one.bytes_scanned < both.bytes_scanned
    # the view is empty again between statements, so no later statement reads a stale selection
    assert engine.run(
        "SELECT count(*) AS n FROM logs.ev WHERE datehour = '2024/03/05/12'"
    ).table.to_pylist() == [{"n": 2}]
    # the bare name resolves in the execution's database (QueryExecutionContext.Database)
    bare = engine.run("SELECT count(*) AS n FROM ev WHERE datehour >= '2024/03/05/13'", database="logs")
    assert bare.table.to_pylist() == [{"n": 1}]


def test_hive_style_locations_integers_and_injected(glue: tuple[GlueService, Engine], tmp_path: Path) -> None:
    service, engine = glue
    service.create_database(CreateDatabaseInput.model_validate({"DatabaseInput": {"Name": "logs"}}))
    lake = tmp_path / "lake"
    _parquet(lake / "dev" / "device=a" / "h=01", [1])
    _parquet(lake / "dev" / "device=a" / "h=02", [2])
    _parquet(lake / "dev" / "device=b" / "h=02", [20])
    params = {
        "projection.enabled": "true",
        "projection.device.type": "injected",
        "projection.h.type": "integer",
        "projection.h.range": "0,23",
        "projection.h.digits": "2",
    }
    _create(service, "dev", [("device", "string"), ("h", "int")], params, "s3://tidelake-lake/dev/")
    rows = engine.run(
        "SELECT device, h, v FROM logs.dev WHERE device IN ('a', 'b') AND h >= 2 ORDER BY v"
    ).table
    assert rows.to_pylist() == [{"device": "a", "h": 2, "v": 2}, {"device": "b", "h": 2, "v": 20}]
    with pytest.raises(
        ProjectionError, match="CONSTRAINT_VIOLATION: For the injected projected partition column device"
    ):
        engine.run("SELECT count(*) FROM logs.dev")
    # a templated value that would step out of the table's folder names no lake folder: refused
    template = {
        "projection.enabled": "true",
        "projection.device.type": "injected",
        "storage.location.template": "s3://tidelake-lake/dev/${device}/h=02/",
    }
    _create(service, "tpl", [("device", "string")], template, "s3://tidelake-lake/dev/")
    assert engine.run("SELECT sum(v) AS s FROM logs.tpl WHERE device = 'device=b'").table.to_pylist() == [
        {"s": 20}
    ]
    with pytest.raises(ProjectionError, match="not a plain path in the lake"):
        engine.run("SELECT count(*) FROM logs.tpl WHERE device = '..'")
