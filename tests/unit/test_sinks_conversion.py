import datetime as dt
import json

import pyarrow as pa
import pytest

from core.events import ClickstreamEvent
from sinks.conversion import convert
from sinks.schemas import DatasetSchema, infer_type


def _event(i: int, **changes: object) -> bytes:
    event = ClickstreamEvent(
        event_id=f"e{i}",
        event_time=dt.datetime(2019, 1, 22, 0, 26, 16, 123456, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
        visitor_id=f"v{i % 3}",
        method="GET",
        url="/p?q=1",
        page="/p",
        referrer=None,
        status=200,
        bytes=512,
        user_agent="Mozilla/5.0",
        is_bot=False,
        source="test",
    ).to_json_dict()
    event.update(changes)
    return json.dumps({k: v for k, v in event.items() if v != "<absent>"}).encode()


def test_clickstream_events_convert_to_the_declared_columns() -> None:
    result = convert([_event(0), _event(1)], DatasetSchema.clickstream())
    assert result.errors == []
    assert list(result.rows) == [0, 1]
    assert result.table.schema.field("event_time").type == pa.timestamp("us", "UTC")
    assert result.table.schema.field("status").type == pa.int32()
    first = result.table.to_pylist()[0]
    assert first["event_time"] == dt.datetime(2019, 1, 22, 0, 26, 16, 123456, tzinfo=dt.UTC)
    assert first["referrer"] is None
    assert first["is_bot"] is False


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"{not json", "invalid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (b"\xff\xfe\x00", "the record is not UTF-8 text (invalid start byte at byte 0); expected one JSON object"),
        (b"[1, 2]", "expected one JSON object, got array"),
        (b"", "invalid JSON: Expecting value at line 1 column 1"),
        (None, "the record has no value (a tombstone); expected one JSON object"),
        (_event(9, event_time="<absent>"), "required field 'event_time' is missing or null (schema clickstream)"),
        (_event(9, event_time=None), "required field 'event_time' is missing or null (schema clickstream)"),
        (_event(9, status="two hundred"), "field 'status': expected int32, got string \"two hundred\" (schema clickstream)"),
        (_event(9, status=1.5), "field 'status': expected int32, got float 1.5 (schema clickstream)"),
        (_event(9, status=2**40), "field 'status': expected int32, got integer 1099511627776, out of range (schema clickstream)"),
        (_event(9, is_bot="no"), "field 'is_bot': expected bool, got string \"no\" (schema clickstream)"),
        (_event(9, event_time="yesterday"),
         "field 'event_time': expected timestamp[us, UTC], got string \"yesterday\", not an ISO-8601 time (schema clickstream)"),
        (_event(9, page={"nested": 1}), "field 'page': expected string, got object {\"nested\": 1} (schema clickstream)"),
        (b'{"event_id": "a"}{"event_id": "b"}', "invalid JSON: Extra data at line 1 column 18"),
    ],
)  # fmt: skip
def test_one_bad_record_among_good_ones_is_isolated_with_its_reason(bad: bytes | None, message: str) -> None:
    values = [_event(0), _event(1), bad, _event(3), _event(4)]
    result = convert(values, DatasetSchema.clickstream())
    assert list(result.rows) == [0, 1, 3, 4]
    assert result.errors == [(2, message)]
    assert result.table.column("event_id").to_pylist() == ["e0", "e1", "e3", "e4"]


def test_pretty_printed_json_and_unknown_fields_convert() -> None:
    pretty = json.dumps(json.loads(_event(5, extra_field="ignored")), indent=2).encode()
    result = convert([pretty], DatasetSchema.clickstream())
    assert result.errors == []
    assert result.table.column_names[:2] == ["event_id", "event_time"]
    assert "extra_field" not in result.table.column_names


def test_inferred_analytics_schema_types_fields_by_name_and_grows() -> None:
    schema = DatasetSchema.inferred()
    first = b'{"page": "/a", "window_start": "2019-01-22T00:00:00Z", "window_end": "2019-01-22T00:01:00Z", "count": 3, "avg_bytes": 10}'
    result = convert([first], schema)
    assert result.errors == []
    types = {f.name: f.type for f in result.table.schema}
    assert types == {
        "page": pa.string(),
        "window_start": pa.timestamp("us", "UTC"),
        "window_end": pa.timestamp("us", "UTC"),
        "count": pa.int64(),
        "avg_bytes": pa.float64(),
    }
    later = b'{"page": "/b", "window_start": "2019-01-22T00:01:00Z", "window_end": "2019-01-22T00:02:00Z", "count": 1, "avg_bytes": 2.5, "count_distinct_visitor_id": 1}'
    conflicting = b'{"page": 7, "window_start": "2019-01-22T00:01:00Z", "count": 1}'
    result = convert([later, conflicting], schema)
    assert list(result.rows) == [0]
    assert [i for i, _ in result.errors] == [1]
    assert result.table.column("count_distinct_visitor_id").to_pylist() == [1]
    assert [f.name for f in schema.fields][-1] == "count_distinct_visitor_id"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("window_start", pa.timestamp("us", "UTC")), ("event_time", pa.timestamp("us", "UTC")), ("count", pa.int64()),
     ("count_distinct_page", pa.int64()), ("sum_bytes", pa.float64()), ("anomaly_score", pa.float64()), ("page", None)],
)  # fmt: skip
def test_inference_rule_by_field_name(name: str, expected: pa.DataType | None) -> None:
    assert infer_type(name) == expected


def test_declared_schema_from_config_columns() -> None:
    schema = DatasetSchema.from_declared(
        [{"name": "k", "type": "string", "nullable": False}, {"name": "n", "type": "int64"}]
    )
    result = convert([b'{"k": "a", "n": 1}', b'{"n": 2}'], schema)
    assert result.table.to_pylist() == [{"k": "a", "n": 1}]
    assert result.errors == [(1, "required field 'k' is missing or null (schema declared)")]
