"""A query racing a compaction swap is run again by itself and returns exact rows (issue 13, speed
during a loop). The race is real and made deterministic: the engine lists the lake, a real
compaction swaps the partition folder, then DuckDB reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import queries.engine
from core.errors import QueryError
from queries.catalog import Table
from queries.engine import Engine
from sinks.compaction import compact
from sinks.writer import write_parquet
from tests.unit.queries_lake import EVENTS_SCHEMA, event

FILES = 4
ROWS_PER_FILE = 25
COUNT_SQL = "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM clickstream_events"
TOTAL = [{"n": FILES * ROWS_PER_FILE, "ids": FILES * ROWS_PER_FILE}]


def _lake(tmp_path: Path) -> Path:
    """One partition folder of FILES small files, as a delivery stream leaves it."""
    lake = tmp_path / "lake"
    folder = lake / "clickstream_events" / "dt=2026-11-23" / "hour=07"
    start = dt.datetime(2026, 11, 23, 7, tzinfo=dt.UTC)
    for f in range(FILES):
        rows = [
            event(f"{start + dt.timedelta(seconds=f * ROWS_PER_FILE + i):%Y-%m-%dT%H:%M:%S}", f"v{i}", "/p")
            for i in range(ROWS_PER_FILE)
        ]
        write_parquet(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA), folder / f"t+0+{f:020d}.parquet")
    return lake


class _SwapAfterListing(Engine):
    """The engine, with a real compaction of the lake right after its first listing of it."""

    def __init__(self, lake: Path) -> None:
        super().__init__(lake)
        self.refreshes = 0
        self.swapped: list[Any] = []

    def refresh(self, deadline: float | None = None) -> dict[str, Table]:
        found = super().refresh(deadline)
        self.refreshes += 1
        if self.refreshes == 1:
            self.swapped = compact(self.lake, "clickstream_events")
        return found


def test_a_query_whose_files_are_swapped_after_listing_runs_again_with_exact_rows(tmp_path: Path) -> None:
    with _SwapAfterListing(_lake(tmp_path)) as engine:
        result = engine.run(COUNT_SQL)
        assert [(c.files_before, c.files_after) for c in engine.swapped] == [(FILES, 1)]
        assert engine.refreshes == 2  # the first run met the swap and failed inside; the second read
        assert result.table.to_pylist() == TOTAL
        assert engine.warnings() == []


def test_files_swapped_while_the_lake_is_listed_are_listed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(tmp_path)
    real_discover = queries.engine.discover
    listings: list[int] = []

    def list_then_swap(root: Path, deadline: float | None = None) -> list[Table]:
        tables = real_discover(root, deadline)
        listings.append(sum(len(t.files) for t in tables))
        if len(listings) == 1:  # before the footers of the listed files are read
            compact(lake, "clickstream_events")
        return tables

    monkeypatch.setattr(queries.engine, "discover", list_then_swap)
    with Engine(lake) as engine:
        result = engine.run(COUNT_SQL)
    assert listings == [FILES, 1]
    assert result.table.to_pylist() == TOTAL


def test_files_vanishing_at_every_run_fail_with_a_clear_error_never_wrong_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(tmp_path)
    real_discover = queries.engine.discover

    def list_then_remove_one(root: Path, deadline: float | None = None) -> list[Table]:
        tables = real_discover(root, deadline)
        next(t for t in tables if t.files).files[0].unlink()
        return tables

    monkeypatch.setattr(queries.engine, "discover", list_then_remove_one)
    with (
        Engine(lake) as engine,
        pytest.raises(QueryError, match="vanished while the query read them, in 2 runs in a row"),
    ):
        engine.run(COUNT_SQL)
