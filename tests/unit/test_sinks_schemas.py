"""Dataset schemas: the shipped streams' declared columns, and an inferred schema that a null never
fixes and that evolves as a Glue table would (issue 13, item 2: half of late_events went to the
error prefix because its first record's `referrer` was null)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from core.errors import ConfigError
from core.events import ClickstreamEvent
from core.topics import LATE_EVENTS
from sinks.config import load_shipped, parse_config
from sinks.conversion import Conversion, convert
from sinks.planning import PartitionPlan, Planner
from sinks.records import RecordColumns
from sinks.schemas import DatasetSchema, written_type
from sinks.writer import write_parquet
from stream_apps.engine import WindowEngine
from stream_apps.records import Record
from stream_apps.spec import spec_from_mapping

ARRIVAL_MS = int(dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)
_START = dt.datetime(2019, 1, 22, 0, 0, tzinfo=dt.UTC)


def _click(i: int, seconds: int, referrer: str | None) -> bytes:
    event = ClickstreamEvent(
        event_id=f"e{i}",
        event_time=_START + dt.timedelta(seconds=seconds),
        visitor_id=f"v{i % 5}",
        method="GET",
        url=f"/p{i % 3}",
        page=f"/p{i % 3}",
        referrer=referrer,
        status=200,
        bytes=100 + i,
        user_agent="Mozilla/5.0",
        is_bot=False,
        source="test",
    )
    return json.dumps(event.to_json_dict()).encode()


def _late_events(count: int) -> list[bytes]:
    """`count` late events as a real stream app writes them (stream_apps.engine), the first one's
    event without a referrer, the others with one."""
    spec = spec_from_mapping({"name": "page-views-1m", "window": "tumbling:60s", "aggregates": ["count"]})
    engine = WindowEngine(spec, [0], now_s=0.0)
    engine.process(0, [Record(0, b"k", _click(0, 10, None)), Record(1, b"k", _click(1, 300, None))], 1.0)
    engine.advance(1.0)  # the watermark passes 00:05: the window of 00:00 closes
    late = [
        Record(2 + i, b"k", _click(2 + i, 20 + i % 30, None if i == 0 else f"http://r/{i}"))
        for i in range(count)
    ]
    engine.process(0, late, 1.0)
    assert engine.counters.late == count
    return [value for _, value in engine.outbox.late]


def _consumer_record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(LATE_EVENTS, 0, -1, offset, ARRIVAL_MS, 0, b"k", value, [], None, 1, len(value), -1)


def _deliver(planner: Planner, batches: list[list[bytes]], first_offset: int = 0) -> PartitionPlan:
    """One flush of `batches` polled one after the other, each converted as it arrives (as
    `DeliveryStream` does), then planned."""
    columns = RecordColumns(LATE_EVENTS, 0)
    conversions: list[Conversion] = []
    offset = first_offset
    for batch in batches:
        columns.extend([_consumer_record(offset + i, value) for i, value in enumerate(batch)])
        offset += len(batch)
        conversions.append(planner.convert_batch(LATE_EVENTS, columns.values.last_batch()))
    return planner.plan(columns, set(), conversions)


def _write(plan: PartitionPlan, lake: Path) -> None:
    for planned in plan.files:
        write_parquet(planned.table, lake / planned.relative_path)


@pytest.mark.parametrize("schema", ["late-events", "infer"])
def test_late_events_whose_first_event_has_no_referrer_all_reach_the_lake(
    schema: str, tmp_path: Path
) -> None:
    """The shipped late-events stream (declared) and the same records under `schema = "infer"`:
    the first poll holds only the event with a null referrer, the next ones have referrers."""
    config = load_shipped("late-events").model_copy(update={"schema_": schema})
    planner = Planner(config)
    values = _late_events(120)
    plan = _deliver(planner, [values[:1], values[1:60], values[60:]])
    assert (len(values), plan.rows_written, plan.errors) == (120, 120, {})
    _write(plan, tmp_path)
    with duckdb.connect() as db:
        rows = db.execute(
            f'SELECT count(*), count(event.referrer), min(event.referrer), max("offset") - min("offset") + 1 '
            f"FROM read_parquet('{tmp_path}/late_events/**/*.parquet', union_by_name = true)"
        ).fetchone()
    assert rows == (120, 119, "http://r/1", 120)


def test_the_shipped_streams_declare_their_columns_except_analytics() -> None:
    kinds = {
        name: load_shipped(name).new_schema()
        for name in ("clickstream-events", "late-events", "dead-letters", "analytics")
    }
    assert {name: (s.declared, s.name) for name, s in kinds.items()} == {
        "clickstream-events": (True, "clickstream"),
        "late-events": (True, "late-events"),
        "dead-letters": (True, "error-output"),
        "analytics": (False, "infer"),
    }
    event = kinds["late-events"].arrow.field("event").type
    assert [f.name for f in kinds["late-events"].fields] == [
        "app", "topic", "partition", "offset", "event_time", "watermark", "missed_windows", "allowed_lateness", "event"
    ]  # fmt: skip
    assert (event.field("referrer").type, event.field("event_time").type) == (
        pa.string(),
        pa.timestamp("us", "UTC"),
    )


def test_a_conversion_error_names_the_field_and_both_types_and_lands_in_the_error_prefix(
    tmp_path: Path,
) -> None:
    planner = Planner(load_shipped("late-events"))
    good = _late_events(2)
    bad = json.loads(good[1])
    bad["event"]["referrer"] = 7
    plan = _deliver(planner, [[good[0], json.dumps(bad).encode(), good[1]]])
    assert (plan.rows_written, plan.errors) == (2, {"format-conversion-failed": 1})
    _write(plan, tmp_path)
    with duckdb.connect() as db:
        errors = db.execute(
            f"SELECT kafka_offset, error_type, error_message FROM read_parquet('{tmp_path}/_errors/late_events/**/*.parquet')"
        ).fetchall()
    assert errors == [
        (
            1,
            "format-conversion-failed",
            "field 'event.referrer': expected string, got integer 7 (schema late-events)",
        )
    ]


def test_an_inferred_schema_waits_for_a_value_widens_int_to_float_and_adds_fields(tmp_path: Path) -> None:
    config = parse_config(
        {
            "name": "rows",
            "topics": [LATE_EVENTS],
            "dataset": "rows",
            "schema": "infer",
            "time_field": "window_start",
        },
        "test",
    )
    planner = Planner(config)
    row = {
        "window_start": "2019-01-22T00:00:00Z",
        "page": "/a",
        "hits": 3,
        "note": None,
        "extra": {"a": None},
    }
    first = _deliver(planner, [[json.dumps(row).encode()]])
    row2 = {**row, "hits": 2.5, "note": "n", "extra": {"a": 1, "b": "x"}, "new": True}
    second = _deliver(planner, [[json.dumps(row2).encode()], [json.dumps(row).encode()]], first_offset=1)
    assert (first.rows_written, second.rows_written, first.errors, second.errors) == (1, 2, {}, {})
    # the first file holds what was known then: pending fields as strings of nulls, hits as int64
    assert first.files[0].table.schema == pa.schema(
        [
            ("window_start", pa.timestamp("us", "UTC")),
            ("page", pa.string()),
            ("hits", pa.int64()),
            ("note", pa.string()),
            ("extra", pa.struct([("a", pa.string())])),
        ]
    )
    assert second.files[0].table.schema == pa.schema(
        [
            ("window_start", pa.timestamp("us", "UTC")),
            ("page", pa.string()),
            ("hits", pa.float64()),
            ("note", pa.string()),
            ("extra", pa.struct([("a", pa.int64()), ("b", pa.string())])),
            ("new", pa.bool_()),
        ]
    )
    conflict = _deliver(planner, [[json.dumps({**row, "hits": "many"}).encode()]], first_offset=3)
    assert [(f.error_type, f.table.column("error_message").to_pylist()) for f in conflict.files] == [
        ("format-conversion-failed", ["field 'hits': expected float64, got string \"many\" (schema infer)"])
    ]
    _write(first, tmp_path)
    _write(second, tmp_path)
    with duckdb.connect() as db:
        relation = db.sql(
            f"SELECT offset_rank, hits, new FROM (SELECT row_number() OVER (ORDER BY hits) AS offset_rank, * "
            f"FROM read_parquet('{tmp_path}/rows/**/*.parquet', union_by_name = true)) ORDER BY offset_rank"
        )
        assert [str(t) for t in relation.types] == ["BIGINT", "DOUBLE", "BOOLEAN"]
        assert relation.fetchall() == [(1, 2.5, True), (2, 3.0, None), (3, 3.0, None)]


def test_a_null_only_field_stays_pending_until_a_value_shows_its_type() -> None:
    schema = DatasetSchema.inferred()
    convert([b'{"a": null, "b": [], "c": {}}'], schema)
    assert [(f.name, str(f.type)) for f in schema.fields] == [
        ("a", "null"),
        ("b", "list<item: null>"),
        ("c", "struct<>"),
    ]
    assert [written_type(f.type) for f in schema.fields] == [pa.string(), pa.list_(pa.string()), pa.string()]
    result = convert([b'{"a": 1, "b": [2.5], "c": {"d": "x"}}'], schema)
    assert result.errors == []
    assert result.table.schema == pa.schema(
        [("a", pa.int64()), ("b", pa.list_(pa.float64())), ("c", pa.struct([("d", pa.string())]))]
    )


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"mode": "errors", "schema": "infer"}, "mode = 'errors' writes the error output's columns"),
        ({"mode": "errors", "fields": [{"name": "a"}], "schema": "declared"}, "mode = 'errors' writes"),
        ({"schema": "error-output"}, "schema 'error-output' is for mode = 'errors'"),
    ],
)
def test_the_error_output_schema_goes_with_errors_mode_only(data: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        parse_config({"name": "x", "topic_pattern": r".*\.dlq$", **data}, "test")
    assert (
        parse_config({"name": "x", "topic_pattern": "t", "mode": "errors"}, "test").schema_ == "error-output"
    )
