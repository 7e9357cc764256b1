"""The windowing engine against the DuckDB oracle, with Kafka partitions simulated in memory."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest

from stream_apps.engine import WindowEngine
from stream_apps.spec import spec_from_mapping
from tests.stream_events import clickstream
from tests.stream_oracle import expected_rows, last_per_window, row_sort_key

ALL_AGGS = ["count", "count_distinct:page", "sum:bytes", "min:status", "max:bytes", "avg:bytes", "top:3:page"]


def spec_for(window: str, **extra: Any):
    data = {"name": "t", "window": window, "aggregates": ALL_AGGS, "key_field": "visitor_id"}
    data.update(extra)
    return spec_from_mapping(data)


def run_engine(spec, events, partitions: int = 4, batch: int = 7, interleave_seed: int = 3) -> list[dict]:
    """Feed events partitioned by key (in file order per partition), batches interleaved unevenly."""
    by_partition: dict[int, list] = {p: [] for p in range(partitions)}
    for event in events:
        p = zlib.crc32(event["visitor_id"].encode()) % partitions
        by_partition[p].append(
            (len(by_partition[p]), event["visitor_id"].encode(), json.dumps(event).encode())
        )
    engine = WindowEngine(spec, list(range(partitions)), now_s=0.0)
    cursors = dict.fromkeys(by_partition, 0)
    turn = interleave_seed
    while any(cursors[p] < len(by_partition[p]) for p in by_partition):
        for p in by_partition:
            turn = (turn * 7 + 3) % 11
            take = batch * (turn + 1)
            chunk = by_partition[p][cursors[p] : cursors[p] + take]
            cursors[p] += len(chunk)
            engine.process(p, chunk, now_s=1.0)
            engine.advance(1.0)
    engine.advance(1_000.0)  # every partition idle: everything closes
    return [json.loads(value) for _, value in engine.outbox.rows]


@pytest.mark.parametrize(
    "window", ["tumbling:60s", "hopping:300s/60s", "sliding:60s", "session:30s", "stagger:60s"]
)
def test_final_rows_equal_duckdb_group_by_for_each_window_kind(window: str) -> None:
    spec = spec_for(window)
    events = clickstream(600, seed=11)
    rows = run_engine(spec, events)
    assert sorted(rows, key=row_sort_key) == expected_rows(events, spec)
    assert len(rows) == len(last_per_window(rows, spec))  # exactly one final row per window


def test_global_window_without_key_filters_and_derived_error_rate() -> None:
    spec = spec_from_mapping(
        {
            "name": "t",
            "window": "tumbling:60s",
            "aggregates": ["count", "sum:is_error", "avg:is_error", "count_distinct:visitor_id"],
            "filters": ["is_bot = false"],
            "derive": {"is_error": "status >= 500"},
        }
    )
    events = clickstream(800, seed=5)
    rows = run_engine(spec, events)
    expected = expected_rows(events, spec)
    assert sorted(rows, key=row_sort_key) == expected
    assert sum(r["count"] for r in rows) == sum(1 for e in events if not e["is_bot"])


def test_session_rows_carry_entry_exit_page_and_length() -> None:
    spec = spec_for("session:30s", aggregates=["count", "first:page", "last:page", "duration"])
    events = clickstream(400, seed=9)
    rows = run_engine(spec, events)
    assert sorted(rows, key=row_sort_key) == expected_rows(events, spec)
