"""Memory bounds of the query server (issue 14, item 4 there): results kept in memory are bounded
by bytes, a too-large result is a clear error, and DuckDB's spill to disk is capped."""

import time
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import QueryError
from queries.engine import Engine, Limits
from queries.results import ResultStore, text_bytes
from queries.service import QueryService
from tests.unit.queries_lake import event, write_events


def _words(count: int, width: int) -> pa.Table:
    return pa.table({"w": [str(i).rjust(width, "x") for i in range(count)]})


def test_text_bytes_counts_characters_and_overhead() -> None:
    assert text_bytes([["ab", None], ["c", "de"]]) == (56 + 16 + 49 + 2) + (56 + 16 + 49 + 1 + 49 + 2)


def test_the_result_cache_is_bounded_by_bytes_oldest_out_first(tmp_path: Path) -> None:
    one = text_bytes([["x" * 100] for _ in range(10)])  # each result below is exactly this size
    store = ResultStore(tmp_path, cached=16, max_cached_bytes=2 * one)
    for query_id in ("a", "b", "c"):
        store.save(query_id, _words(10, 100))
    assert store.cached_ids() == ["b", "c"]
    assert store.cached_bytes == 2 * one
    store.load("b")  # a page of b makes it the newest
    store.save("d", _words(10, 100))
    assert store.cached_ids() == ["b", "d"]


def test_a_result_bigger_than_the_cache_is_paged_from_its_file(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, max_cached_bytes=1_000)
    assert store.save("big", _words(50, 100)) == 50
    assert store.cached_ids() == []
    columns, rows = store.load("big")
    assert [c["Name"] for c in columns] == ["w"]
    assert rows[49] == ["49".rjust(100, "x")]
    assert store.cached_ids() == []


def test_a_result_over_the_size_limit_is_a_clear_error(tmp_path: Path) -> None:
    write_events(tmp_path / "lake", [event("2026-11-23T07:00:00", "v1", "/a")])
    with (
        Engine(tmp_path / "lake", Limits(max_result_bytes=4_000)) as engine,
        pytest.raises(QueryError) as caught,
    ):
        engine.run("SELECT i FROM range(1000) t(i)")
    assert str(caught.value) == (
        "the result is larger than 4,000 bytes (the result-size limit) after 1,000 rows; "
        "select fewer or narrower columns, add a LIMIT or aggregate"
    )


def test_the_api_fails_a_too_large_result_with_that_message(tmp_path: Path) -> None:
    write_events(tmp_path / "lake", [event("2026-11-23T07:00:00", "v1", "/a")])
    with Engine(tmp_path / "lake", Limits(max_result_bytes=4_000)) as engine:
        service = QueryService(engine, ResultStore(tmp_path / "results"))
        try:
            query_id = service.start("SELECT i FROM range(1000) t(i)")
            deadline = time.monotonic() + 30
            while service.get(query_id).state in ("QUEUED", "RUNNING") and time.monotonic() < deadline:
                time.sleep(0.02)
            execution = service.get(query_id)
        finally:
            service.close()
    assert (execution.state, execution.error_category) == ("FAILED", 2)
    assert execution.reason.startswith("the result is larger than 4,000 bytes (the result-size limit)")


def test_spill_to_disk_is_capped(tmp_path: Path) -> None:
    with Engine(tmp_path, Limits(max_spill="1GB")) as engine:
        rows = engine.run(
            "SELECT value FROM duckdb_settings() WHERE name = 'max_temp_directory_size'"
        ).table.to_pylist()
    assert rows == [{"value": "953.6 MiB"}]
