"""Error output: records a delivery stream could not deliver, as queryable Parquet rows.

Firehose writes one JSON document per failed record under its error prefix (`attemptsMade`,
`arrivalTimestamp`, `errorCode`, `errorMessage`, `rawData` in base64, ...). tidelake writes the same
facts as Parquet columns under `_errors/<dataset>/<error-type>/`, so
`SELECT * FROM read_parquet('<lake>/_errors/**/*.parquet', union_by_name = true)` answers "what
failed, why and where from". The raw payload is kept as text when it is UTF-8, else base64
(`raw_encoding`).

Two positions per row: `kafka_topic`, `kafka_partition`, `kafka_offset` say where the delivery
stream read the record (SQL reserves `offset`); the nullable `source_*` columns say where the record
came from. For a record the stream itself failed on, that is the same place; for a dead-lettered
record it is what the dead-letter contract's headers say (core/dead_letters.py): the source topic,
partition and offset of a record a stream app could not read, or the file and line of a line a
producer could not publish, with who dead-lettered it (`dead_lettered_by`) and when
(`dead_lettered_at`). The source columns come last, after the columns of files written before them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from core.dead_letters import DeadLetter

FORMAT_CONVERSION_FAILED = "format-conversion-failed"
PROCESSING_FAILED = "processing-failed"
ACTIVE_PARTITION_EXCEEDED = "activePartitionExceeded"

ERROR_SCHEMA = pa.schema(
    [
        pa.field("error_type", pa.string(), nullable=False),
        pa.field("error_message", pa.string(), nullable=False),
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("raw_data", pa.string()),
        pa.field("raw_encoding", pa.string(), nullable=False),  # utf-8 | base64 | none
        pa.field("headers", pa.string()),  # JSON object of the Kafka headers (values decoded like raw_data)
        pa.field("arrival_time", pa.timestamp("us", "UTC"), nullable=False),  # the Kafka record timestamp
        pa.field("attempt_time", pa.timestamp("us", "UTC"), nullable=False),  # when the sink gave up on it
        pa.field("delivery_stream", pa.string(), nullable=False),
        pa.field("source_topic", pa.string()),
        pa.field("source_partition", pa.int32()),
        pa.field("source_offset", pa.int64()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("dead_lettered_by", pa.string()),  # `error.process`: replay, stream-app:<name>, ...
        pa.field("dead_lettered_at", pa.timestamp("us", "UTC")),  # `error.time`
    ]
)


def encode_payload(raw: bytes | None) -> tuple[str | None, str]:
    """(text, encoding): UTF-8 text as is, anything else base64, None as 'none'."""
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _headers_json(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    if not headers:
        return None
    return json.dumps({name: encode_payload(value)[0] for name, value in headers}, ensure_ascii=False)


@dataclass(frozen=True)
class ErrorRecord:
    """One record that goes to the error output, with the reason."""

    error_type: str
    error_message: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    #: What a dead-lettered record's headers say; None: the record itself is the source.
    dead_letter: DeadLetter | None = None


def error_table(
    records: Sequence[ErrorRecord], delivery_stream: str, now: dt.datetime | None = None
) -> pa.Table:
    """The error rows of `records` in `ERROR_SCHEMA`."""
    attempt = now or dt.datetime.now(dt.UTC)
    raw = [encode_payload(r.value) for r in records]
    sources = [
        r.dead_letter or DeadLetter(None, None, topic=r.topic, partition=r.partition, offset=r.offset)
        for r in records
    ]
    columns = {
        "error_type": [r.error_type for r in records],
        "error_message": [r.error_message for r in records],
        "kafka_topic": [r.topic for r in records],
        "kafka_partition": [r.partition for r in records],
        "kafka_offset": [r.offset for r in records],
        "key": [encode_payload(r.key)[0] for r in records],
        "raw_data": [text for text, _ in raw],
        "raw_encoding": [encoding for _, encoding in raw],
        "headers": [_headers_json(r.headers) for r in records],
        "arrival_time": [dt.datetime.fromtimestamp(max(r.timestamp_ms, 0) / 1000, dt.UTC) for r in records],
        "attempt_time": [attempt] * len(records),
        "delivery_stream": [delivery_stream] * len(records),
        "source_topic": [s.topic for s in sources],
        "source_partition": [s.partition for s in sources],
        "source_offset": [s.offset for s in sources],
        "source_file": [s.file for s in sources],
        "source_line": [s.line for s in sources],
        "dead_lettered_by": [s.process for s in sources],
        "dead_lettered_at": [s.time for s in sources],
    }
    return pa.table(columns, schema=ERROR_SCHEMA)
