import datetime as dt
import os
from pathlib import Path

import pytest

from queries.catalog import athena_ddl, discover
from queries.engine import Engine
from tests.unit.queries_lake import event, write_events, write_rows


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    write_events(
        tmp_path,
        [
            event("2026-11-23T07:10:00", "v1", "/a"),
            event("2026-11-23T07:20:00", "v2", "/b"),
            event("2026-11-23T08:05:00", "v1", "/a"),
        ],
    )
    return tmp_path


def test_partition_columns_are_typed_date_and_integer(lake: Path) -> None:
    with Engine(lake) as engine:
        columns = {
            r["column_name"]: r["column_type"]
            for r in engine.run("DESCRIBE clickstream_events").table.to_pylist()
        }
        rows = engine.run(
            "SELECT dt, hour, count(*) AS n FROM clickstream_events GROUP BY ALL ORDER BY hour"
        ).table
    assert columns["dt"] == "DATE"
    assert columns["hour"] == "INTEGER"
    assert columns["event_time"] == "TIMESTAMP WITH TIME ZONE"
    assert rows.to_pylist() == [
        {"dt": dt.date(2026, 11, 23), "hour": 7, "n": 2},
        {"dt": dt.date(2026, 11, 23), "hour": 8, "n": 1},
    ]


def test_schema_drift_is_unioned_by_name(tmp_path: Path) -> None:
    write_rows(
        tmp_path / "page_views_1m" / "dt=2026-11-23" / "hour=07" / "a.parquet", [{"page": "/a", "count": 3}]
    )
    write_rows(
        tmp_path / "page_views_1m" / "dt=2026-11-23" / "hour=08" / "b.parquet",
        [{"page": "/b", "count": 5, "visitors": 2}],
    )
    with Engine(tmp_path) as engine:
        rows = engine.run(
            "SELECT page, count, visitors, hour FROM page_views_1m ORDER BY page"
        ).table.to_pylist()
    assert rows == [
        {"page": "/a", "count": 3, "visitors": None, "hour": 7},
        {"page": "/b", "count": 5, "visitors": 2, "hour": 8},
    ]


def test_hidden_temp_and_underscore_files_and_error_folder_are_never_read(lake: Path) -> None:
    hour = lake / "clickstream_events" / "dt=2026-11-23" / "hour=07"
    write_rows(hour / ".part-1.parquet.tmp.parquet", [{"x": 1}])
    write_rows(hour / "_part-2.parquet", [{"x": 1}])
    write_rows(lake / "_errors" / "clickstream_events" / "processing-failed" / "e.parquet", [{"x": 1}])
    tables = discover(lake)
    assert [t.name for t in tables] == ["clickstream_events"]
    assert len(tables[0].files) == 2
    with Engine(lake) as engine:
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 3}]


def test_new_partition_is_visible_to_the_next_query(lake: Path) -> None:
    with Engine(lake) as engine:
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 3}]
        write_events(
            lake, [event("2026-11-23T09:00:00", "v3", "/c"), event("2026-11-23T09:01:00", "v3", "/d")]
        )
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 5}]


def test_empty_dataset_is_listed_with_no_files_and_says_so_when_queried(tmp_path: Path) -> None:
    (tmp_path / "page_views_1m").mkdir()
    tables = discover(tmp_path)
    assert [(t.name, len(t.files), t.partition_count) for t in tables] == [("page_views_1m", 0, 0)]
    with Engine(tmp_path) as engine, pytest.raises(Exception, match="has no Parquet files yet") as caught:
        engine.run("SELECT * FROM page_views_1m")
    assert type(caught.value).__name__ == "TableNotFound"


def test_empty_events_dataset_has_its_declared_columns(tmp_path: Path) -> None:
    (tmp_path / "clickstream_events").mkdir()
    with Engine(tmp_path) as engine:
        assert engine.run("SELECT count(*) AS n FROM clickstream_events").table.to_pylist() == [{"n": 0}]
        names = engine.run("SELECT * FROM clickstream_events").table.column_names
    assert names[:3] == ["event_id", "event_time", "visitor_id"]
    assert names[-2:] == ["dt", "hour"]


def test_symlinked_file_that_leaves_the_lake_is_not_part_of_a_table(lake: Path, tmp_path_factory) -> None:
    outside = write_rows(tmp_path_factory.mktemp("outside") / "secret.parquet", [{"x": 1}])
    os.symlink(outside, lake / "clickstream_events" / "dt=2026-11-23" / "hour=07" / "link.parquet")
    assert len(discover(lake)[0].files) == 2


def test_row_and_byte_counts_come_from_the_files(lake: Path) -> None:
    table = discover(lake)[0]
    assert table.row_count() == 3
    assert table.total_bytes == sum(f.stat().st_size for f in table.files)
    assert table.partition_count == 2
    assert table.partition_types == {"dt": "DATE", "hour": "INTEGER"}


def test_athena_ddl_declares_columns_partitions_and_location(lake: Path) -> None:
    ddl = athena_ddl(discover(lake)[0], "s3://bucket/lake/")
    assert ddl.splitlines()[0] == "CREATE EXTERNAL TABLE IF NOT EXISTS `clickstream_events` ("
    assert "  `event_time` timestamp," in ddl
    assert "  `status` int," in ddl
    assert "PARTITIONED BY (\n  `dt` date,\n  `hour` int\n)" in ddl
    assert "STORED AS PARQUET\nLOCATION 's3://bucket/lake/clickstream_events/';" in ddl
    assert ddl.endswith("MSCK REPAIR TABLE `clickstream_events`;")


def test_athena_ddl_maps_nested_types(tmp_path: Path) -> None:
    """A late_events-like file: the `event` struct and a list become Athena's struct<>/array<>/map<>."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "late_events" / "dt=2019-01-22" / "hour=00"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "app": pa.array(["page-views-1m"]),
            "event": pa.array(
                [{"page": "/", "status": 200, "bytes": 5, "is_bot": False}],
                pa.struct(
                    [
                        ("page", pa.string()),
                        ("status", pa.int32()),
                        ("bytes", pa.int64()),
                        ("is_bot", pa.bool_()),
                    ]
                ),
            ),
            "top_10": pa.array(
                [[{"page": "/", "count": 3}]],
                pa.list_(pa.struct([("page", pa.string()), ("count", pa.int64())])),
            ),
            "tags": pa.array([[("k", 1.5)]], pa.map_(pa.string(), pa.float64())),
        }
    )
    pq.write_table(table, folder / "late.parquet")
    (late,) = discover(tmp_path)
    ddl = athena_ddl(late, "s3://bucket/lake")
    assert "  `event` struct<page:string,status:int,bytes:bigint,is_bot:boolean>," in ddl
    assert "  `top_10` array<struct<page:string,count:bigint>>," in ddl
    assert "  `tags` map<string,double>\n)" in ddl


def test_tables_of_default_are_also_named_with_athenas_quoted_default(tmp_path: Path) -> None:
    """PyAthena's SQLAlchemy dialect and awswrangler send `"default"."table"`; `default` is a
    keyword in DuckDB, so the engine mirrors database default's tables in a schema of that name."""
    lake = tmp_path / "lake"
    write_events(lake, [event("2026-11-23T07:15:00", "v1", "/a"), event("2026-11-23T08:15:00", "v2", "/b")])
    with Engine(lake) as engine:
        sql = 'SELECT count(*) AS n FROM "default"."clickstream_events"'
        assert engine.run(sql).table.to_pylist() == [{"n": 2}]
        write_events(lake, [event("2026-11-24T07:15:00", "v3", "/c")])
        assert engine.run(sql).table.to_pylist() == [{"n": 3}]  # follows the rebuilt view
        assert engine.table_names() == ["clickstream_events"]  # listed once
        write_events(lake, [event("2026-11-23T07:15:00", "v1", "/a")], dataset="page_views")
        assert engine.run('SELECT count(*) AS n FROM "default".page_views').table.to_pylist() == [{"n": 1}]
        for path in sorted((lake / "page_views").rglob("*.parquet")):
            path.unlink()
        with pytest.raises(Exception, match="page_views"):  # gone with its dataset
            engine.run('SELECT count(*) AS n FROM "default".page_views')
