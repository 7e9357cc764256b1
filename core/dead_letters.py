"""The dead-letter contract: the headers a record carries on a `<topic>.dlq` topic.

Producers (a line of a file they could not publish) and stream apps (a Kafka record they could not
read) write to the same `<topic>.dlq` topics, and the `dead-letters` delivery stream files every
record under `_errors/<dataset>/<error.type>/` in the lake. All three read and write these headers
through `DeadLetter`, so a record says the same thing whoever dead-lettered it:

| header | value (UTF-8 text) | when |
|---|---|---|
| `error.type` | short kebab-case reason: `malformed-line`, `bad-event-time`, ... (the error-prefix folder) | always |
| `error.message` | what was wrong, in words | always |
| `error.process` | who dead-lettered it: `producer` (or a producer's own name, e.g. `replay`), `stream-app:<app name>` | always |
| `error.time` | when, ISO-8601 UTC with microseconds (`2026-11-30T14:57:17.123456Z`) | always |
| `source.topic`, `source.partition`, `source.offset` | where the record was read (decimal text) | from Kafka |
| `source.file`, `source.line` | the file and its 1-based line number | from a file |

The value of a DLQ record is the record (or the line) exactly as it was read; a stream app keeps
the source record's key, a producer sends none.

The names follow Kafka Connect's dead-letter context headers (`DeadLetterQueueReporter` in
apache/kafka: `__connect.errors.topic`, `.partition`, `.offset`, `.connector.name`, `.stage`,
`.exception.class.name`, `.exception.message`; every value UTF-8 text, numbers in decimal). Connect
needs its `__connect.errors.` namespace because it forwards the failed record's own headers along
with them; tidelake forwards none, so the names stay short: `error.*` says why, by whom and when,
`source.*` says where the record came from. `error.type`, `error.message`, `source.file` and
`source.line` are the names producers have always written, so their records already in topics
are read as they are.

Reading is tolerant (`DeadLetter.from_headers`): a header that is missing, repeated (the last one
wins, as Kafka's `lastHeader`), not UTF-8 or not a number gives None, never an exception. Records
written by stream apps before this contract carry `error` (the message, starting with the position
`topic[partition]@offset: `), `error_type` and `app`; those are read too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.events import format_event_time, parse_event_time

ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"
ERROR_PROCESS = "error.process"
ERROR_TIME = "error.time"
SOURCE_TOPIC = "source.topic"
SOURCE_PARTITION = "source.partition"
SOURCE_OFFSET = "source.offset"
SOURCE_FILE = "source.file"
SOURCE_LINE = "source.line"

#: The headers stream apps wrote before this contract: still read, never written.
LEGACY_ERROR_MESSAGE = "error"
LEGACY_ERROR_TYPE = "error_type"
LEGACY_APP = "app"
_COUNT = re.compile(r"[0-9]{1,19}")  # Connect writes -1 for "not known": None here too
_LEGACY_POSITION = re.compile(r"(?P<topic>[^\s\[\]]+)\[(?P<partition>[0-9]+)\]@(?P<offset>[0-9]+): ")

#: `error.process` of a producer that does not name itself.
PRODUCER = "producer"
STREAM_APP_PREFIX = "stream-app:"

#: Error types of stream apps' dead letters; producers write `bad-event-time` too (and their own).
BAD_EVENT_TIME = "bad-event-time"  # no event time, or one that is not a time
MALFORMED_RECORD = "malformed-record"  # a Kafka record that is not one JSON object

Headers = Iterable[tuple[str, bytes | None]]


def stream_app_process(app: str) -> str:
    """The `error.process` of stream app `app`: `stream-app:page-views-1m`."""
    return STREAM_APP_PREFIX + app


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a record was dead-lettered, by whom, when, and where it came from (None = not known)."""

    error_type: str | None
    message: str | None
    process: str | None = None
    time: dt.datetime | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers, in the contract's order; fields that are None are left out."""
        values: list[tuple[str, object]] = [
            (ERROR_TYPE, self.error_type),
            (ERROR_MESSAGE, self.message),
            (ERROR_PROCESS, self.process),
            (ERROR_TIME, None if self.time is None else format_event_time(self.time)),
            (SOURCE_TOPIC, self.topic),
            (SOURCE_PARTITION, self.partition),
            (SOURCE_OFFSET, self.offset),
            (SOURCE_FILE, self.file),
            (SOURCE_LINE, self.line),
        ]
        return [(name, str(value).encode()) for name, value in values if value is not None]

    @classmethod
    def from_headers(cls, headers: Headers | None) -> DeadLetter:
        """The dead letter a record's headers describe (kafka-python's list of pairs, aiokafka's
        tuple, or a `RecordColumns.headers_at`); anything missing or unreadable is None."""
        text: dict[str, str] = {}
        for pair in headers or ():
            try:
                name, value = pair
            except (TypeError, ValueError):
                continue
            decoded = _text(value)
            if isinstance(name, str) and decoded is not None:
                text[name] = decoded
            elif isinstance(name, str):
                text.pop(name, None)  # the last one wins, even when it is unreadable
        message = text.get(ERROR_MESSAGE)
        topic = text.get(SOURCE_TOPIC)
        partition = _int(text.get(SOURCE_PARTITION), 2**31)
        offset = _int(text.get(SOURCE_OFFSET))
        if message is None and LEGACY_ERROR_MESSAGE in text:
            message = text[LEGACY_ERROR_MESSAGE]
            position = _LEGACY_POSITION.match(message)
            if topic is None and position is not None:
                topic = position["topic"]
                partition = _int(position["partition"], 2**31)
                offset = _int(position["offset"])
        process = text.get(ERROR_PROCESS)
        if process is None and LEGACY_APP in text:
            process = stream_app_process(text[LEGACY_APP])
        return cls(
            error_type=text.get(ERROR_TYPE, text.get(LEGACY_ERROR_TYPE)),
            message=message,
            process=process,
            time=_time(text.get(ERROR_TIME)),
            topic=topic,
            partition=partition,
            offset=offset,
            file=text.get(SOURCE_FILE),
            line=_int(text.get(SOURCE_LINE)),
        )


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _int(text: str | None, limit: int = 2**63) -> int | None:
    """A partition (limit 2**31), offset or line number; None unless a decimal in [0, limit)."""
    if text is None or _COUNT.fullmatch(text) is None or int(text) >= limit:
        return None
    return int(text)


def _time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_event_time(text)
    except ValueError:
        return None
