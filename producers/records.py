"""What parsing yields: a `Record` to publish, or a `Reject` for the dead-letter topic.

A record keeps its payload apart from `event_id` and `event_time`, so a replay that loops or
rebases time can re-stamp both without parsing the line again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from core.dead_letters import BAD_EVENT_TIME, PRODUCER, DeadLetter
from core.events import EVENT_TIME_FIELD, ClickstreamEvent
from producers.timestamps import TimeFormatter, from_micros

#: Error types a reject can carry (the value of its `error.type` header, core/dead_letters.py).
MALFORMED = "malformed-line"
NOT_UTF8 = "not-utf8"
EMPTY = "empty-line"
TOO_LARGE = "record-too-large"
BAD_TIME = BAD_EVENT_TIME
MISSING_KEY = "missing-key"


def event_id_of(source: str, line_no: int, raw: bytes) -> str:
    """Stable id of one source line: hash of dataset name, line number and the line's bytes."""
    digest = hashlib.blake2b(source.encode(), digest_size=16)
    digest.update(b"\x00%d\x00" % line_no)
    digest.update(raw)
    return digest.hexdigest()


def pass_event_id(event_id: str, pass_no: int) -> str:
    """The id of a record on pass `pass_no` of a looping replay: pass 0 keeps the line's id, later
    passes replace its last 8 hex digits by the pass number (unique per line and pass, and cheap)."""
    if pass_no == 0:
        return event_id
    return f"{event_id[:-8]}{pass_no:08x}"


@dataclass(slots=True)
class Record:
    """One parsed line: its key, its event time and its payload fields (without id and time)."""

    line_no: int
    event_id: str
    time_us: int
    key: str | None
    fields: dict[str, object]

    def payload(self, shift_us: int = 0, pass_no: int = 0, formatter: TimeFormatter | None = None) -> dict:
        """The JSON object published: `event_id`, `event_time`, then the fields in order."""
        fmt = formatter or TimeFormatter()
        return {
            "event_id": pass_event_id(self.event_id, pass_no),
            EVENT_TIME_FIELD: fmt(self.time_us + shift_us),
            **self.fields,
        }

    def to_event(self) -> ClickstreamEvent:
        """The clickstream event of an access-log record (generic CSV/JSONL records have other fields)."""
        return ClickstreamEvent(event_id=self.event_id, event_time=from_micros(self.time_us), **self.fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Reject:
    """A line that cannot be published, kept whole with why, for `<topic>.dlq`."""

    raw: bytes
    line_no: int
    error_type: str
    message: str
    source_file: str

    @property
    def position(self) -> str:
        return f"{self.source_file}:{self.line_no}"

    def headers(self, process: str = PRODUCER, time: dt.datetime | None = None) -> list[tuple[str, bytes]]:
        """The Kafka headers of the dead-letter contract (core/dead_letters.py): error type, message,
        who (`process`, e.g. `replay`), when (`time`, default now), source file and line number."""
        letter = DeadLetter(
            error_type=self.error_type,
            message=self.message,
            process=process,
            time=time or dt.datetime.now(dt.UTC),
            file=self.source_file,
            line=self.line_no,
        )
        return letter.headers()
