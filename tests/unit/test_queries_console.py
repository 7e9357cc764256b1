"""The console's endpoints: tables with columns, the shipped library, named runs with bound parameters."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from queries import named
from queries.api import create_app
from queries.engine import Engine
from queries.results import ResultStore
from queries.service import QueryService
from queries.web import NamedRun, Starter, library, start_named, table_details
from tests.unit.queries_lake import event, write_events, write_rows


def test_every_shipped_query_is_in_the_library_with_its_text_and_typed_parameters() -> None:
    shipped = library()
    assert [q["name"] for q in shipped] == sorted(named.load_all())
    top = next(q for q in shipped if q["name"] == "top_pages_per_hour")
    assert top["sql"] == named.load_all()["top_pages_per_hour"].sql  # as written, placeholders and all
    assert "WHERE rank <= $top" in top["sql"]
    assert top["params"] == [
        {
            "name": "day",
            "type": "DATE",
            "default": None,
            "help": "only this day (prunes dt partitions)",
            "example": "2026-11-23",
        },
        {
            "name": "hour",
            "type": "INTEGER",
            "default": None,
            "help": "only this hour of the day, 0-23 (prunes hour partitions)",
            "example": "10",
        },
        {"name": "top", "type": "INTEGER", "default": "5", "help": "pages per hour", "example": "10"},
        {
            "name": "include_bots",
            "type": "BOOLEAN",
            "default": "false",
            "help": "count requests from crawlers too",
            "example": "true",
        },
    ]


def _started(calls: list[tuple[str, dict[str, Any]]]) -> Starter:
    def start(sql: str, workgroup: str, token: None, params: dict[str, Any]) -> str:
        calls.append((sql, params))
        return "id-1"

    return start


def test_a_named_run_binds_typed_values_and_never_pastes_them_into_the_text(tmp_path: Path) -> None:
    write_events(
        tmp_path / "lake",
        [event("2026-11-23T07:00:00", "v1", "/a"), event("2026-11-23T07:01:00", "v2", "/a")],
    )
    calls: list[tuple[str, dict[str, Any]]] = []
    given = {"day": "2026-11-23", "hour": "", "top": "1", "include_bots": None}
    with Engine(tmp_path / "lake") as engine:
        assert start_named(engine, _started(calls), "top_pages_per_hour", NamedRun(params=given)) == "id-1"
        ((sql, params),) = calls
        assert sql == named.load_all()["top_pages_per_hour"].sql
        assert params == {"day": dt.date(2026, 11, 23), "hour": None, "top": 1, "include_bots": None}
        rows = engine.run(sql, params).table.to_pylist()
    # include_bots NULL: `NULL OR NOT is_bot` keeps the humans
    assert [(r["page"], r["views"]) for r in rows] == [("/a", 2)]
    with Engine(tmp_path / "lake") as engine:
        with pytest.raises(HTTPException) as bad:
            start_named(engine, _started(calls), "top_pages_per_hour", NamedRun(params={"top": "five"}))
        assert (bad.value.status_code, bad.value.detail) == (
            400,
            "parameter top must be INTEGER, got 'five' (example: 10)",
        )
        with pytest.raises(HTTPException) as unknown:
            start_named(engine, _started(calls), "top_pages_per_hour", NamedRun(params={"topp": "1"}))
        assert unknown.value.status_code == 400
        assert "has no parameter topp" in str(unknown.value.detail)
        with pytest.raises(HTTPException) as missing:
            start_named(engine, _started(calls), "nope", NamedRun())
        assert (missing.value.status_code, missing.value.detail) == (404, "no shipped named query 'nope'")
        with pytest.raises(HTTPException) as empty:
            start_named(engine, _started(calls), "late_events", NamedRun(params={"app": "a"}))
        assert empty.value.status_code == 400
        assert "reads dataset 'late_events', which is not in the lake" in str(empty.value.detail)


def test_a_text_parameter_is_a_value_never_sql(tmp_path: Path) -> None:
    quoted = "it's'); SELECT 1; --"
    when = dt.datetime(2026, 11, 23, 7, 5, tzinfo=dt.UTC)
    for app in (quoted, "other"):
        write_rows(
            tmp_path / "lake" / "late_events" / "dt=2026-11-23" / "hour=07" / f"{len(app)}.parquet",
            [{"app": app, "event_time": when}],
        )
    calls: list[tuple[str, dict[str, Any]]] = []
    with Engine(tmp_path / "lake") as engine:
        start_named(engine, _started(calls), "late_events", NamedRun(params={"app": quoted}))
        ((sql, params),) = calls
        assert quoted not in sql
        rows = engine.run(sql, params).table.to_pylist()
    assert [(r["app"], r["late_events"]) for r in rows] == [(quoted, 1)]


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


def test_the_api_docs_pages_load_nothing_from_another_origin(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    with Engine(tmp_path / "lake") as engine:
        service = QueryService(engine, ResultStore(tmp_path / "results"))
        with TestClient(create_app(service), base_url="http://127.0.0.1") as client:
            for page in ("/docs", "/redoc"):
                html = client.get(page).text
                sources = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html)
                assert sources, page
                assert [s for s in sources if not s.startswith("/")] == [], page
                for source in sources:
                    if source.startswith("/static-offline-docs/"):
                        assert client.get(source).status_code == 200, source
        service.close()
