"""The console's endpoints: tables with columns, the shipped library, literals for parameters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from queries import named
from queries.engine import Engine
from queries.web import library, table_details
from tests.unit.queries_lake import event, write_events


def test_inline_params_fills_defaults_and_given_values_as_typed_literals() -> None:
    query = named.parse(
        "q",
        "-- question: q?\n-- param: day DATE = NULL | d\n-- param: top INTEGER = 5 | t\n"
        "-- param: top_name VARCHAR = it's | n\n-- param: bots BOOLEAN = false | b\n"
        "SELECT $top AS top, $top_name AS name, $day AS day, $bots AS bots",
    )
    assert named.inline_params(query) == (
        "SELECT 5 AS top, 'it''s' AS name, CAST(NULL AS DATE) AS day, false AS bots"
    )
    filled = named.inline_params(query, {"day": "2026-11-23", "top": "3"})
    assert filled == "SELECT 3 AS top, 'it''s' AS name, CAST('2026-11-23' AS DATE) AS day, false AS bots"
    assert duckdb.sql(filled).fetchall() == [(3, "it's", dt.date(2026, 11, 23), False)]


def test_every_shipped_query_is_in_the_library_with_runnable_sql(tmp_path: Path) -> None:
    shipped = library()
    assert [q["name"] for q in shipped] == sorted(named.load_all())
    top = next(q for q in shipped if q["name"] == "top_pages_per_hour")
    assert "$" not in top["sql"]
    write_events(
        tmp_path / "lake",
        [event("2026-11-23T07:00:00", "v1", "/a"), event("2026-11-23T07:01:00", "v2", "/a")],
    )
    with Engine(tmp_path / "lake") as engine:
        rows = engine.run(top["sql"]).table.to_pylist()
    assert [(r["page"], r["views"]) for r in rows] == [("/a", 2)]


def test_table_details_list_columns_types_and_partition_keys(tmp_path: Path) -> None:
    write_events(
        tmp_path / "lake",
        [event("2026-11-23T07:00:00", "v1", "/a"), event("2026-11-23T08:00:00", "v1", "/b")],
    )
    with Engine(tmp_path / "lake") as engine:
        (table,) = table_details(engine)
    assert (table["table"], table["files"], table["partitions"], table["rows"]) == (
        "clickstream_events",
        2,
        2,
        2,
    )
    columns = {c["name"]: (c["type"], c["partition"]) for c in table["columns"]}
    assert columns["event_time"] == ("TIMESTAMP WITH TIME ZONE", False)
    assert columns["status"] == ("INTEGER", False)
    assert columns["dt"] == ("DATE", True)
    assert columns["hour"] == ("INTEGER", True)
