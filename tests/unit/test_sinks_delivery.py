"""The delivery plan of one flush: rows by prefix, errors by type, counts that reconcile."""

import base64
import datetime as dt
import json
from typing import Any

import pyarrow as pa
from kafka.consumer.fetcher import ConsumerRecord

from core.dead_letters import DeadLetter
from producers.records import Reject
from sinks.config import parse_config
from sinks.error_records import ERROR_SCHEMA, ErrorRecord, encode_payload, error_table
from sinks.planning import Planner
from sinks.records import RecordColumns

ARRIVAL_MS = int(dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)
DEAD_LETTERED_AT = dt.datetime(2026, 11, 23, 11, 59, 58, 250000, tzinfo=dt.UTC)
_SOURCE_COLUMNS = (
    "source_topic",
    "source_partition",
    "source_offset",
    "source_file",
    "source_line",
    "dead_lettered_by",
    "dead_lettered_at",
)


def _record(
    offset: int, value: bytes | None, partition: int = 0, headers: list | None = None
) -> ConsumerRecord:
    size = len(value) if value is not None else -1
    return ConsumerRecord(
        "clickstream.events",
        partition,
        -1,
        offset,
        ARRIVAL_MS,
        0,
        b"k",
        value,
        headers or [],
        None,
        1,
        size,
        -1,
    )


def _columns(records: list[ConsumerRecord]) -> RecordColumns:
    return RecordColumns.of(records[0].topic, records[0].partition, records)


def _event(i: int, hour: int = 0, page: str = "/p", **changes: Any) -> bytes:
    event = {
        "event_id": f"e{i}",
        "event_time": f"2019-01-22T{hour:02d}:26:16.000000Z",
        "visitor_id": "v",
        "method": "GET",
        "url": page,
        "page": page,
        "referrer": None,
        "status": 200,
        "bytes": 1,
        "user_agent": "ua",
        "is_bot": False,
        "source": "s",
    }
    event.update(changes)
    return json.dumps(event).encode()


def _config(**extra: Any) -> Any:
    base = {
        "name": "unit",
        "topics": ["clickstream.events"],
        "dataset": "clickstream_events",
        "schema": "clickstream",
    }
    return parse_config({**base, **extra}, "test")


def test_rows_split_by_event_hour_into_deterministic_file_names() -> None:
    records = [_record(10, _event(0, hour=0)), _record(11, _event(1, hour=1)), _record(12, _event(2, hour=0))]
    plan = Planner(_config()).plan(_columns(records), set())
    assert [(f.relative_path, f.rows) for f in plan.files] == [
        ("clickstream_events/dt=2019-01-22/hour=00/clickstream.events+0+00000000000000000010.parquet", 2),
        ("clickstream_events/dt=2019-01-22/hour=01/clickstream.events+0+00000000000000000011.parquet", 1),
    ]
    assert (plan.start, plan.end, plan.rows_written, plan.errors, plan.dropped) == (10, 12, 3, {}, 0)
    assert plan.files[0].table.column("event_id").to_pylist() == ["e0", "e2"]


def test_bad_records_go_to_the_error_prefix_and_counts_reconcile() -> None:
    records = [
        _record(0, _event(0)),
        _record(1, b"{oops"),
        _record(2, _event(2, status="x")),
        _record(3, b"\xff\x00\x01"),
        _record(4, _event(4, event_time=None)),
        _record(5, _event(5)),
    ]
    plan = Planner(_config()).plan(_columns(records), set())
    assert plan.rows_written == 2
    assert plan.errors == {"format-conversion-failed": 4}
    assert plan.rows_written + sum(plan.errors.values()) + plan.dropped == len(records)
    error_file = next(f for f in plan.files if f.error_type)
    assert error_file.relative_path == (
        "_errors/clickstream_events/format-conversion-failed/dt=2026-11-23/clickstream.events+0+00000000000000000001.parquet"
    )
    rows = error_file.table.to_pylist()
    assert [r["kafka_offset"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["raw_encoding"] == "base64"
    assert base64.b64decode(rows[2]["raw_data"]) == b"\xff\x00\x01"
    assert rows[0]["raw_data"] == "{oops"
    assert rows[3]["error_message"].startswith("required field 'event_time' is missing")
    assert {r["kafka_topic"] for r in rows} == {"clickstream.events"}


def test_prefixes_beyond_the_open_partition_bound_become_active_partition_exceeded() -> None:
    config = _config(prefix="page=!{partitionKeyFromQuery:page}/", buffer={"max_open_partitions": 2})
    records = [_record(i, _event(i, page=f"/p{i % 3}")) for i in range(6)]
    open_prefixes: set[str] = set()
    plan = Planner(config).plan(_columns(records), open_prefixes)
    assert open_prefixes == {"page=%2Fp0/", "page=%2Fp1/"}
    assert plan.rows_written == 4
    assert plan.errors == {"activePartitionExceeded": 2}
    exceeded = next(f for f in plan.files if f.error_type == "activePartitionExceeded")
    assert exceeded.table.column("kafka_offset").to_pylist() == [2, 5]


def test_arrival_time_prefix_uses_the_kafka_timestamp() -> None:
    plan = Planner(_config(time_source="arrival")).plan(_columns([_record(0, _event(0))]), set())
    assert plan.files[0].relative_path.startswith("clickstream_events/dt=2026-11-23/hour=12/")


def handler_by_offset(event: dict, context: object) -> dict:
    out = []
    for item in event["records"]:
        offset = int(item["recordId"].rsplit(":", 1)[1])
        data = json.loads(base64.b64decode(item["data"]))
        if offset == 1:
            out.append({"recordId": item["recordId"], "result": "Dropped"})
        elif offset == 2:
            out.append({"recordId": item["recordId"], "result": "ProcessingFailed"})
        elif offset == 3:
            continue  # no answer for this record
        else:
            data["page"] = "/rewritten"
            encoded = base64.b64encode(json.dumps(data).encode()).decode()
            out.append(
                {
                    "recordId": item["recordId"],
                    "result": "Ok",
                    "data": encoded,
                    "metadata": {"partitionKeys": {"country": "IR"}},
                }
            )
    return {"records": out}


def test_transform_hook_ok_dropped_failed_and_partition_keys() -> None:
    config = _config(prefix="country=!{partitionKeyFromLambda:country}/")
    records = [_record(i, _event(i)) for i in range(5)]
    plan = Planner(config, handler_by_offset).plan(_columns(records), set())
    assert plan.dropped == 1
    assert plan.errors == {"processing-failed": 2}
    assert plan.rows_written == 2
    data = next(f for f in plan.files if not f.error_type)
    assert (
        data.relative_path
        == "clickstream_events/country=IR/clickstream.events+0+00000000000000000000.parquet"
    )
    assert data.table.column("page").to_pylist() == ["/rewritten", "/rewritten"]
    failed = next(f for f in plan.files if f.error_type).table.to_pylist()
    assert [(r["kafka_offset"], r["error_message"]) for r in failed] == [
        (2, "transform: ProcessingFailed"),
        (3, "transform returned no result for this recordId"),
    ]


def test_an_exception_in_the_hook_fails_the_batch_without_crashing() -> None:
    def broken(event: dict, context: object) -> dict:
        raise RuntimeError("boom")

    plan = Planner(_config(), broken).plan(_columns([_record(0, _event(0)), _record(1, _event(1))]), set())
    assert plan.errors == {"processing-failed": 2}
    assert plan.rows_written == 0
    assert (
        plan.files[0].table.column("error_message").to_pylist() == ["transform raised RuntimeError: boom"] * 2
    )


def _dead_letters_config() -> Any:
    return parse_config(
        {"name": "dlq", "topic_pattern": r".*\.dlq$", "mode": "errors", "time_source": "arrival"}, "test"
    )


def _dlq_record(offset: int, value: bytes, headers: list, key: bytes | None = None) -> ConsumerRecord:
    return ConsumerRecord(
        "clickstream.events.dlq", 0, -1, offset, ARRIVAL_MS, 0, key, value, headers, None, -1, len(value), -1
    )


def test_a_producers_dead_letter_keeps_its_error_type_message_file_and_line() -> None:
    reject = Reject(b"garbage", 7, "malformed-line", "no closing quote", "data/access.log")
    record = _dlq_record(4, b"garbage", reject.headers("replay", DEAD_LETTERED_AT))
    plan = Planner(_dead_letters_config()).plan(_columns([record]), set())
    assert plan.errors == {"malformed-line": 1}
    [only] = plan.files
    assert only.relative_path == (
        "_errors/clickstream_events/malformed-line/dt=2026-11-23/clickstream.events.dlq+0+00000000000000000004.parquet"
    )
    row = only.table.drop_columns(["attempt_time", "headers"]).to_pylist()[0]
    assert row == {
        "error_type": "malformed-line",
        "error_message": "no closing quote",
        "kafka_topic": "clickstream.events.dlq",
        "kafka_partition": 0,
        "kafka_offset": 4,
        "key": None,
        "raw_data": "garbage",
        "raw_encoding": "utf-8",
        "arrival_time": dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC),
        "delivery_stream": "dlq",
        "source_topic": None,
        "source_partition": None,
        "source_offset": None,
        "source_file": "data/access.log",
        "source_line": 7,
        "dead_lettered_by": "replay",
        "dead_lettered_at": DEAD_LETTERED_AT,
    }
    assert json.loads(only.table.column("headers")[0].as_py())["source.line"] == "7"


def test_a_stream_apps_dead_letter_keeps_its_error_type_message_and_source_position() -> None:
    letter = DeadLetter(
        "bad-event-time",
        "no event time: field 'event_time' is absent",
        "stream-app:page-views-1m",
        DEAD_LETTERED_AT,
        topic="clickstream.events",
        partition=3,
        offset=41,
    )
    record = _dlq_record(9, b'{"page": "/"}', letter.headers(), key=b"v1")
    plan = Planner(_dead_letters_config()).plan(_columns([record]), set())
    assert plan.errors == {"bad-event-time": 1}
    [only] = plan.files
    assert only.relative_path.startswith("_errors/clickstream_events/bad-event-time/dt=2026-11-23/")
    row = only.table.to_pylist()[0]
    assert [row[name] for name in ("error_type", "error_message", "kafka_topic", "kafka_offset", "key")] == [
        "bad-event-time",
        "no event time: field 'event_time' is absent",
        "clickstream.events.dlq",
        9,
        "v1",
    ]
    assert [row[name] for name in _SOURCE_COLUMNS] == [
        "clickstream.events",
        3,
        41,
        None,
        None,
        "stream-app:page-views-1m",
        DEAD_LETTERED_AT,
    ]


def test_a_dead_letter_with_the_old_stream_app_headers_keeps_its_message_and_position() -> None:
    headers = [
        ("error", b"clickstream.events[2]@41: KeyError: 'event_time'"),
        ("error_type", b"processing-failed"),
        ("app", b"page-views-1m"),
        ("time_field", b"event_time"),
    ]
    plan = Planner(_dead_letters_config()).plan(_columns([_dlq_record(0, b"{}", headers)]), set())
    assert plan.errors == {"processing-failed": 1}
    row = plan.files[0].table.to_pylist()[0]
    assert row["error_message"] == "clickstream.events[2]@41: KeyError: 'event_time'"
    assert [row[name] for name in _SOURCE_COLUMNS] == [
        "clickstream.events",
        2,
        41,
        None,
        None,
        "stream-app:page-views-1m",
        None,
    ]


def test_a_dead_letter_without_readable_headers_is_processing_failed_with_no_source() -> None:
    headers = [("error.type", b"\xff"), ("source.offset", b"x")]
    plan = Planner(_dead_letters_config()).plan(_columns([_dlq_record(0, b"?", headers)]), set())
    assert plan.errors == {"processing-failed": 1}
    row = plan.files[0].table.to_pylist()[0]
    assert row["error_message"] == "dead-lettered without an error.message header"
    assert [row[name] for name in _SOURCE_COLUMNS] == [None] * 7


def test_a_dead_letter_type_is_kept_as_written_and_escaped_once_into_one_path_segment() -> None:
    headers = [("error.type", b"../../etc"), ("error.message", b"m")]
    plan = Planner(_dead_letters_config()).plan(_columns([_dlq_record(0, b"?", headers)]), set())
    assert plan.errors == {"../../etc": 1}
    assert plan.files[0].table.column("error_type").to_pylist() == ["../../etc"]
    assert plan.files[0].relative_path.startswith("_errors/clickstream_events/..%2F..%2Fetc/dt=2026-11-23/")


def test_a_record_the_sink_fails_on_is_its_own_source() -> None:
    plan = Planner(_config()).plan(
        _columns([_record(10, _event(0)), _record(11, b"{oops", partition=0)]), set()
    )
    [error_file] = [f for f in plan.files if f.error_type]
    row = error_file.table.to_pylist()[0]
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == ("clickstream.events", 0, 11)
    assert [row[name] for name in _SOURCE_COLUMNS] == ["clickstream.events", 0, 11, None, None, None, None]


def test_error_table_schema_and_payload_encoding() -> None:
    record = ErrorRecord("processing-failed", "why", "t", 1, 2, ARRIVAL_MS, None, None)
    table = error_table([record], "s", now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert table.schema == ERROR_SCHEMA
    assert table.to_pylist()[0]["raw_encoding"] == "none"
    assert encode_payload("é".encode()) == ("é", "utf-8")
    assert table.column("arrival_time").type == pa.timestamp("us", "UTC")


def _plan_converted_ahead(config: Any, batches: list[list[ConsumerRecord]]) -> Any:
    planner = Planner(config)
    columns = RecordColumns(batches[0][0].topic, batches[0][0].partition)
    converted = []
    for batch in batches:  # as a delivery stream does: convert each batch as it is buffered
        columns.extend(batch)
        converted.append(planner.convert_batch(columns.topic, columns.values.last_batch()))
    return planner.plan(columns, set(), converted)


def _outcome(plan: Any) -> list[tuple[str, int, list[Any]]]:
    return [(f.relative_path, f.rows, f.table.to_pylist()) for f in plan.files if not f.error_type] + [
        (f.relative_path, f.rows, f.table.drop_columns(["attempt_time"]).to_pylist())
        for f in plan.files
        if f.error_type
    ]


def test_converting_batches_ahead_plans_the_same_files_as_converting_at_the_flush() -> None:
    batches = [
        [_record(0, _event(0, hour=0)), _record(1, _event(1, hour=1))],
        [_record(2, b"{oops"), _record(3, _event(3, hour=0)), _record(4, _event(4, event_time=None))],
        [_record(5, None), _record(6, b'{"event_id":\n"e6"}'), _record(7, _event(7, hour=1))],
    ]
    ahead = _plan_converted_ahead(_config(), batches)
    at_flush = Planner(_config()).plan(_columns([r for batch in batches for r in batch]), set())
    assert _outcome(ahead) == _outcome(at_flush)
    assert (ahead.rows_written, ahead.errors) == (4, {"format-conversion-failed": 4})
    assert [f.table.column("event_id").to_pylist() for f in ahead.files if not f.error_type] == [
        ["e0", "e3"],
        ["e1", "e7"],
    ]


def test_batches_converted_ahead_share_what_an_inferred_dataset_learns() -> None:
    config = _config(
        dataset="analytics_rows", schema="infer", topics=["analytics.rows"], time_field="window_start"
    )
    rows = [
        {"window_start": "2019-01-22T00:00:00Z", "page": "/a", "views": 1},
        {"window_start": "2019-01-22T00:01:00Z", "page": "/b", "views": 2, "bounces": 1},
        {"window_start": "2019-01-22T00:02:00Z", "page": "/c", "views": "many"},
    ]
    batches = [
        [_record(i, json.dumps(row).encode())._replace(topic="analytics.rows")] for i, row in enumerate(rows)
    ]
    ahead = _plan_converted_ahead(config, batches)
    assert _outcome(ahead) == _outcome(
        Planner(config).plan(_columns([r for batch in batches for r in batch]), set())
    )
    (data,) = [f for f in ahead.files if not f.error_type]
    assert data.table.column_names == ["window_start", "page", "views", "bounces"]
    assert data.table.column("bounces").to_pylist() == [None, 1]
    assert ahead.errors == {"format-conversion-failed": 1}
