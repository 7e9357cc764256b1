"""One dead-letter contract end to end: a line a producer cannot publish and a record a stream app
cannot read share `<topic>.dlq`, and the `dead-letters` delivery stream files each of them in the
lake's error prefix under its own error type, with its own message and where it came from."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import duckdb
import pytest

from core.lake import dataset_for_topic
from core.settings import load_settings
from core.topics import dlq_topic
from producers.pacing import Pace
from producers.replay import Replayer, ReplayOptions
from sinks.config import load_shipped
from sinks.stream import DeliveryStream
from tests.integration.sinks_support import unique_group
from tests.stream_kafka import (
    RUNTIMES,
    TopicReader,
    make_spec,
    produce_raw,
    stop_and_summary,
    worker_process,
    write_spec,
)

pytestmark = pytest.mark.integration

#: The extra arguments of `tidelake stream run` per runtime: both send the engine's outbox as it is.
GOOD_LINE = '{"event_time": "2019-01-22T00:00:01.000000Z", "page": "/a", "visitor_id": "v1"}'
BAD_LINE = '{"event_time": "2019-01-22T00:00:02.000000Z", "page": "/b"'  # cut short: not JSON
#: What the stream app reads from partition 1 of the source topic: the third has no event time.
SOURCE_RECORDS = [
    b'{"event_time": "2019-01-22T00:00:03.000000Z", "page": "/c", "visitor_id": "v3"}',
    b'{"event_time": "2019-01-22T00:00:04.000000Z", "page": "/d", "visitor_id": "v4"}',
    b'{"page": "/e", "visitor_id": "v5"}',
]
COLUMNS = (
    "error_type, error_message, kafka_topic, kafka_partition, kafka_offset, raw_data, source_topic, "
    "source_partition, source_offset, source_file, source_line, dead_lettered_by"
)


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_producers_bad_line_and_a_stream_apps_bad_record_reach_the_error_prefix_with_their_own_reason(
    runtime: str, kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    source = make_topic(partitions=2)
    dlq = dlq_topic(source)
    before = dt.datetime.now(dt.UTC)
    produce_raw(kafka_bootstrap, source, SOURCE_RECORDS, partition=1)

    # a producer replays a file whose second line is broken: it goes to the DLQ first
    data = tmp_path / "clicks.jsonl"
    data.write_text(f"{GOOD_LINE}\n{BAD_LINE}\n")
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap}, lake={"root": tmp_path / "lake"})
    replay = asyncio.run(
        Replayer(settings, ReplayOptions(data, source, Pace.from_flags(max_speed=True))).run()
    )
    assert (replay.sent, replay.rejected) == (1, 1)

    # a stream app reads the source topic and meets the record without an event time
    spec = make_spec(source, "tumbling:60s", f"dead-letters-{runtime}")
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    with worker_process(spec_file, kafka_bootstrap, tmp_path / "state", extra=RUNTIMES[runtime]) as worker:
        reader = TopicReader(kafka_bootstrap, dlq)
        reader.wait_until(lambda _: len(reader.messages) >= 2, 90, "both dead letters on the DLQ", worker)
        summary = stop_and_summary(worker)
    reader.close()
    assert (summary["events_in"], summary["errors"]) == (4, 1)

    # the shipped dead-letters delivery stream, subscribed to this test's DLQ only
    config = load_shipped("dead-letters").model_copy(
        update={"topic_pattern": rf"^{re.escape(dlq)}$", "group_id": unique_group()}
    )
    delivered = DeliveryStream(config, settings).run(max_idle_s=3)
    after = dt.datetime.now(dt.UTC)
    assert (delivered.records_in, delivered.rows_written, dict(delivered.errors)) == (
        2,
        0,
        {"malformed-line": 1, "bad-event-time": 1},
    )

    errors = tmp_path / "lake" / "_errors" / dataset_for_topic(source)
    assert sorted(p.relative_to(errors).parts[0] for p in errors.rglob("*.parquet")) == [
        "bad-event-time",
        "malformed-line",
    ]
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT {COLUMNS} FROM read_parquet('{errors}/**/*.parquet') ORDER BY kafka_offset"
        ).fetchall()
        times = con.execute(
            f"SELECT dead_lettered_at FROM read_parquet('{errors}/**/*.parquet') ORDER BY kafka_offset"
        ).fetchall()
    assert rows == [
        (
            "malformed-line",
            "not JSON: unexpected end of data: line 1 column 59 (char 58)",
            dlq,
            0,
            0,
            BAD_LINE,
            None,
            None,
            None,
            str(data),
            2,
            "replay",
        ),
        (
            "bad-event-time",
            "no event time: field 'event_time' is absent",
            dlq,
            0,
            1,
            SOURCE_RECORDS[2].decode(),
            source,
            1,
            2,
            None,
            None,
            f"stream-app:{spec.name}",
        ),
    ]
    assert all(before <= when <= after for (when,) in times), (before, times, after)
