"""A partition key that is NULL for some records: the NULL partition (Hive's
`__HIVE_DEFAULT_PARTITION__`) reads back as NULL and never decides the column's type."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.lake import NULL_PARTITION
from queries.catalog import athena_ddl, discover
from queries.engine import Engine
from sinks.prefixes import PrefixTemplate


def _lake_partitioned_by_status(lake: Path, statuses: list[object]) -> None:
    """Rows partitioned the way `sink run --partition-by 'code=!{partitionKeyFromQuery:status}/'` does."""
    table = pa.table(
        {"event_id": [f"e{i}" for i in range(len(statuses))], "status": pa.array(statuses, pa.int64())}
    )
    prefixes = (
        PrefixTemplate.parse("code=!{partitionKeyFromQuery:status}/")
        .evaluate(len(statuses), table=table)
        .to_pylist()
    )
    for i, prefix in enumerate(prefixes):
        folder = lake / "responses" / prefix
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(i, 1), folder / f"part-{i}.parquet")


def test_null_partition_keeps_the_integer_type_and_reads_as_null(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _lake_partitioned_by_status(lake, [200, 404, None, 200])
    assert sorted(p.name for p in (lake / "responses").iterdir()) == [
        "code=200",
        "code=404",
        f"code={NULL_PARTITION}",
    ]
    (table,) = discover(lake)
    assert table.partition_types == {"code": "INTEGER"}
    assert "  `code` int" in athena_ddl(table, "s3://bucket/lake")
    with Engine(lake) as engine:
        rows = engine.run(
            "SELECT code, typeof(code) AS kind, count(*) AS n FROM responses GROUP BY ALL ORDER BY code NULLS LAST"
        ).table.to_pylist()
    assert rows == [
        {"code": 200, "kind": "INTEGER", "n": 2},
        {"code": 404, "kind": "INTEGER", "n": 1},
        {"code": None, "kind": "INTEGER", "n": 1},
    ]


def test_a_column_of_only_null_partitions_is_a_string(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _lake_partitioned_by_status(lake, [None, None])
    (table,) = discover(lake)
    assert table.partition_types == {"code": "VARCHAR"}
