import os
from pathlib import Path

import pytest

from core.errors import QueryCancelled, QueryError, QueryRefused, TableNotFound
from queries.engine import Engine, Limits
from tests.unit.queries_lake import event, lake_listing, write_events


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    write_events(root, [event("2026-11-23T07:10:00", "v1", "/a"), event("2026-11-23T08:10:00", "v2", "/b")])
    return root


@pytest.fixture
def engine(lake: Path) -> Engine:
    with Engine(lake) as opened:
        yield opened


def _outside_symlink(lake: Path) -> str:
    link = lake / "clickstream_events" / "passwd.csv"
    os.symlink("/etc/passwd", link)
    return f"SELECT * FROM read_csv('{link}')"


REFUSED = {
    "read_csv outside the lake": "SELECT * FROM read_csv('/etc/passwd')",
    "bare path outside the lake": "SELECT * FROM '/etc/passwd'",
    "glob outside the lake": "SELECT * FROM glob('/etc/*')",
    "parquet glob outside the lake": "SELECT * FROM read_parquet('/tmp/**/*.parquet')",
    "dot-dot out of the lake": "SELECT * FROM read_text('{lake}/clickstream_events/../../../../../etc/passwd')",
    "sibling folder sharing the lake's prefix": "SELECT * FROM read_text('{lake}2/secret.txt')",
    "glob above the lake": "SELECT * FROM glob('{lake}/../*')",
    "attach": "ATTACH '/tmp/other.duckdb' AS other",
    "copy to": "COPY (SELECT 1) TO 'out.csv'",
    "copy into the lake": "COPY (SELECT 1) TO '{lake}/clickstream_events/x.parquet'",
    "explain analyze copy": "EXPLAIN ANALYZE COPY (SELECT 1) TO '{lake}/x.csv'",
    "export database": "EXPORT DATABASE '{lake}/dump'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET memory_limit = '100GB'",
    "reset": "RESET enable_external_access",
    "pragma": "PRAGMA enable_external_access",
    "create table": "CREATE TABLE t AS SELECT 1",
    "create view": "CREATE VIEW clickstream_events AS SELECT 1",
    "drop": "DROP VIEW clickstream_events",
    "insert": "INSERT INTO clickstream_events SELECT * FROM clickstream_events",
    "call": "CALL pragma_version()",
    "two statements": "SELECT 1; SELECT 2",
    "http url": "SELECT * FROM read_parquet('http://example.com/x.parquet')",
    "https url": "SELECT * FROM 'https://example.com/x.csv'",
    "s3 url": "SELECT * FROM read_parquet('s3://bucket/lake/*.parquet')",
}


@pytest.mark.parametrize("sql", REFUSED.values(), ids=REFUSED.keys())
def test_statement_is_refused_and_nothing_is_written(engine: Engine, lake: Path, sql: str) -> None:
    before = lake_listing(lake)
    with pytest.raises(QueryRefused, match=r"^refused: "):
        engine.run(sql.format(lake=lake))
    assert lake_listing(lake) == before
    assert not Path("out.csv").exists()


def test_symlink_inside_the_lake_pointing_outside_is_refused(engine: Engine, lake: Path) -> None:
    with pytest.raises(QueryRefused, match=r"^refused: table function read_csv\(\) is not allowed"):
        engine.run(_outside_symlink(lake))


def test_refusal_says_what_is_allowed(engine: Engine) -> None:
    with pytest.raises(QueryRefused) as caught:
        engine.run("INSTALL httpfs")
    assert str(caught.value) == (
        "refused: LOAD statements are not allowed; tidelake queries are read-only over the lake "
        "(allowed: SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE). Nothing was run or written."
    )


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("SELECT count(*) AS n FROM clickstream_events", 1),
        ("WITH x AS (SELECT page FROM clickstream_events) SELECT * FROM x", 2),
        ("DESCRIBE clickstream_events", 14),
        ("SHOW TABLES", 1),
        ("SUMMARIZE clickstream_events", 14),
        ("EXPLAIN SELECT * FROM clickstream_events", 1),
        ("FROM clickstream_events SELECT page", 2),
    ],
)
def test_read_only_statements_run(engine: Engine, sql: str, rows: int) -> None:
    assert engine.run(sql).table.num_rows == rows


def test_syntax_error_gives_line_and_column(engine: Engine) -> None:
    with pytest.raises(QueryError) as caught:
        engine.run("SELECT page\nFROM clickstream_events\nWHER status = 200")
    assert str(caught.value) == 'Parser Error: syntax error at or near "status" (line 3, column 6)'


def test_unknown_table_lists_the_known_ones(engine: Engine, lake: Path) -> None:
    with pytest.raises(TableNotFound) as caught:
        engine.run("SELECT * FROM page_views")
    assert str(caught.value) == (
        f"table 'page_views' does not exist in the lake at {lake}; known tables: clickstream_events"
    )


def test_empty_lake_says_how_to_fill_it(tmp_path: Path) -> None:
    with Engine(tmp_path) as engine, pytest.raises(TableNotFound) as caught:
        engine.run("SELECT * FROM clickstream_events")
    assert "has no datasets yet; fill it with `tidelake demo`" in str(caught.value)


def test_query_over_its_time_limit_is_interrupted(lake: Path) -> None:
    with Engine(lake, Limits(timeout_s=0.3)) as engine, pytest.raises(QueryCancelled) as caught:
        engine.run("SELECT count(*) FROM range(1000000000000) a")
    assert str(caught.value) == "query cancelled: time limit of 0.3 s"


def test_result_over_the_row_limit_is_an_error(lake: Path) -> None:
    with (
        Engine(lake, Limits(max_result_rows=1)) as engine,
        pytest.raises(QueryError, match="more than 1 rows"),
    ):
        engine.run("SELECT * FROM clickstream_events")


def test_memory_limit_and_lock_are_in_force(lake: Path) -> None:
    with Engine(lake, Limits(memory_limit="123MB")) as engine:
        rows = engine.run(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('lock_configuration', 'enable_external_access', 'autoinstall_known_extensions', 'memory_limit') "
            "ORDER BY name"
        ).table.to_pylist()
    assert rows == [
        {"name": "autoinstall_known_extensions", "value": "false"},
        {"name": "enable_external_access", "value": "false"},
        {"name": "lock_configuration", "value": "true"},
        {"name": "memory_limit", "value": "117.3 MiB"},
    ]


def test_one_hour_filter_scans_a_fraction_of_the_lake(tmp_path: Path) -> None:
    events = [
        event(f"2026-11-23T{h:02d}:{m:02d}:00", f"v{m}", f"/p{m % 7}") for h in range(24) for m in range(60)
    ]
    write_events(tmp_path, events)
    with Engine(tmp_path) as engine:
        everything = engine.run("SELECT page, count(*) FROM clickstream_events GROUP BY 1")
        one_hour = engine.run(
            "SELECT page, count(*) FROM clickstream_events WHERE dt = '2026-11-23' AND hour = 7 GROUP BY 1"
        )
        again = engine.run(
            "SELECT page, count(*) FROM clickstream_events WHERE dt = '2026-11-23' AND hour = 7 GROUP BY 1"
        )
    assert sum(r["count_star()"] for r in one_hour.table.to_pylist()) == 60
    # 1 of 24 hourly files; each file's footer is a large share of these tiny files, hence 1/10 here
    assert one_hour.bytes_scanned * 10 <= everything.bytes_scanned
    assert again.bytes_scanned == one_hour.bytes_scanned  # a repeat is measured (and billed) again
