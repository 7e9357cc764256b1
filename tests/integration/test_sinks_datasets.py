"""Analytics topics (pattern subscription, inferred schema that grows) and dead-letter topics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from core.admin import create_topics
from core.settings import load_settings
from core.topics import TopicSpec
from sinks.config import parse_config
from sinks.stream import DeliveryStream
from tests.integration.sinks_support import error_rows, produce, unique_group

pytestmark = pytest.mark.integration


def _stream_factory(bootstrap: str, lake: Path, **fields: object) -> Callable[[], DeliveryStream]:
    """New runs of one delivery stream (the config `fields`, a group of its own, a 1 s interval)."""
    settings = load_settings(kafka={"bootstrap_servers": bootstrap}, lake={"root": lake})
    config = parse_config({"group_id": unique_group(), "buffer": {"interval_s": 1}, **fields}, "test")
    return lambda: DeliveryStream(config, settings)


def _window(page: str, minute: int, count: int, **extra: object) -> dict[str, object]:
    return {
        "page": page,
        "window_start": f"2019-01-22T00:{minute:02d}:00.000000Z",
        "window_end": f"2019-01-22T00:{minute + 1:02d}:00.000000Z",
        "count": count,
        **extra,
    }


def test_analytics_topics_land_in_their_own_datasets_with_inferred_growing_schemas(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    stem = f"sinktest{uuid.uuid4().hex[:8]}"
    views, visitors = f"analytics.{stem}-views-1m", f"analytics.{stem}-visitors-1m"
    create_topics(kafka_bootstrap, [TopicSpec(views, 2), TopicSpec(visitors, 1)])
    produce(kafka_bootstrap, views, [_window("/a", 0, 3), _window("/b", 0, 1), _window("/a", 1, 2)])
    produce(kafka_bootstrap, visitors, [_window("/a", 0, 3), b'{"page": "/x", "window_start": "not a time"}'])
    lake = tmp_path / "lake"
    stream = _stream_factory(
        kafka_bootstrap,
        lake,
        name="analytics-test",
        topic_pattern=rf"^analytics\.{stem}-.+",
        schema="infer",
        time_field="window_start",
    )
    first = stream().run(max_idle_s=5)
    assert (first.records_in, first.rows_written, first.error_count) == (5, 4, 1)
    # a later run meets a new aggregate column: old files lack it, union_by_name reads both
    produce(kafka_bootstrap, views, [_window("/c", 2, 5, count_distinct_visitor_id=4, avg_bytes=10)])
    second = stream().run(max_idle_s=5)
    assert (second.records_in, second.rows_written) == (1, 1)
    views_dataset = f"{stem}_views_1m"
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT page, window_start, count, count_distinct_visitor_id, avg_bytes, dt, hour "
            f"FROM read_parquet('{lake}/{views_dataset}/**/*.parquet', union_by_name = true, hive_partitioning = true) "
            f"ORDER BY window_start, page"
        ).fetchall()
        types = dict(
            con.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{lake}/{views_dataset}/**/*.parquet', union_by_name = true))"
            ).fetchall()
        )
    assert [(r[0], r[1].minute, r[2], r[3], r[4]) for r in rows] == [
        ("/a", 0, 3, None, None),
        ("/b", 0, 1, None, None),
        ("/a", 1, 2, None, None),
        ("/c", 2, 5, 4, 10.0),
    ]
    assert {(str(r[5]), r[6]) for r in rows} == {("2019-01-22", "00")}
    assert types["window_start"] == "TIMESTAMP WITH TIME ZONE"
    assert (types["count"], types["count_distinct_visitor_id"], types["avg_bytes"]) == (
        "BIGINT",
        "BIGINT",
        "DOUBLE",
    )
    errors = error_rows(lake, f"{stem}_visitors_1m")
    assert [(e[0], e[2]) for e in errors] == [("format-conversion-failed", 1)]
    assert "window_start" in errors[0][5]


def test_dead_letter_topics_land_under_the_error_prefix_of_their_source(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    stem = f"sinktest{uuid.uuid4().hex[:8]}"
    dlq = f"{stem}.events.dlq"
    create_topics(kafka_bootstrap, [TopicSpec(dlq, 1)])
    from kafka import KafkaProducer

    with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        for line, kind in ((b"GET /broken HTTP", b"malformed-line"), (b"\xff\xfe", b"not-utf8")):
            headers = [("error.type", kind), ("error.message", b"why: " + kind), ("source.line", b"7")]
            producer.send(dlq, value=line, headers=headers)
        producer.flush()
    lake = tmp_path / "lake"
    stream = _stream_factory(
        kafka_bootstrap,
        lake,
        name="dlq-test",
        topic_pattern=rf"^{stem}\..*\.dlq$",
        mode="errors",
        time_source="arrival",
    )
    summary = stream().run(max_idle_s=5)
    assert (summary.records_in, summary.rows_written, dict(summary.errors)) == (
        2,
        0,
        {"malformed-line": 1, "not-utf8": 1},
    )
    errors = error_rows(lake, f"{stem}_events")
    assert [(e[0], e[3], e[4], e[5]) for e in errors] == [
        ("malformed-line", "GET /broken HTTP", "utf-8", "why: malformed-line"),
        ("not-utf8", "//4=", "base64", "why: not-utf8"),
    ]
    with duckdb.connect() as con:
        headers = con.execute(
            f"SELECT headers FROM read_parquet('{lake}/_errors/**/*.parquet') LIMIT 1"
        ).fetchone()
    assert headers is not None
    assert json.loads(headers[0])["source.line"] == "7"
