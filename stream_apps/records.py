"""Record decoding: a Kafka record as the window engine reads it (`Record`), its bytes read as an
event (a JSON object) and the event's time in µs since the epoch (`RecordDecoder.decode`), and the
reason a record that cannot be read is refused (`RecordDecoder.refusal`).

Separate from the windows and the clock because it is the only part that sees bytes: past
`decode`, the engine handles events and integer times. A refused record is data, not a crash: the
engine dead-letters it with `refusal`'s error type and message (core/dead_letters.py's contract:
MALFORMED_RECORD for bytes that are not a JSON object, BAD_EVENT_TIME for a time field that is
absent, null or not an ISO-8601 time with a UTC offset) and goes on.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from core.dead_letters import BAD_EVENT_TIME, MALFORMED_RECORD
from stream_apps.durations import TimeParser
from stream_apps.spec import AppSpec

#: What no time field's value equals, not even JSON null: the cache of the last parsed time starts empty.
_NO_TIME_YET = object()


class Record(NamedTuple):
    """One Kafka record as the engine reads it."""

    offset: int
    key: bytes | None
    value: bytes | None


class RecordDecoder:
    """Reads the records of one app's source: JSON objects whose `spec.time_field` holds the event
    time. A KDA SQL program reads times as its SQL does (its `parse_time_us`: a TIMESTAMP without an
    offset is UTC); otherwise `durations.TimeParser` (ISO-8601 with a UTC offset)."""

    def __init__(self, spec: AppSpec) -> None:
        self.time_field = spec.time_field
        self._parse_time = getattr(spec.program, "parse_time_us", None) or TimeParser()
        self._last_text: Any = _NO_TIME_YET
        self._last_t = 0

    def start_batch(self) -> None:
        """Forget the last parsed time: call before each batch of one partition."""
        self._last_text, self._last_t = (
            _NO_TIME_YET,
            0,
        )  # a null time must be parsed (and refused), never reused

    def decode(self, raw: bytes | None) -> tuple[dict[str, Any], int]:
        """The event and its time in µs. The time of the last text is reused while the text repeats
        (a replay's consecutive events often share one). Raises anything on a record that cannot be
        read; `refusal` says why."""
        event = orjson.loads(raw)  # type: ignore[arg-type]
        text = event[self.time_field]
        if text != self._last_text:
            self._last_t = self._parse_time(text)
            self._last_text = text
        return event, self._last_t

    def refusal(self, raw: bytes | None, exc: Exception) -> tuple[str, str]:
        """(error type, message) of a record `decode` refused with `exc`. Bad records are rare, so
        the reason is worked out again here, off the hot path."""
        time_field = self.time_field
        error_type, message = MALFORMED_RECORD, ""
        try:
            event = orjson.loads(raw)  # type: ignore[arg-type]
        except orjson.JSONDecodeError as error:
            message = "no value (a tombstone)" if raw is None else f"not JSON: {error}"
        else:
            if not isinstance(event, dict):
                kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
                message = f"not a JSON object but {kind.get(type(event), 'a number')}"
            elif event.get(time_field) is None:
                error_type = BAD_EVENT_TIME
                message = (
                    f"no event time: field {time_field!r} is {'null' if time_field in event else 'absent'}"
                )
            else:
                error_type = BAD_EVENT_TIME
                value = event[time_field]
                detail = f" ({exc})" if isinstance(value, str) else ""
                message = f"field {time_field!r}: {value!r} is not an ISO-8601 time with a UTC offset{detail}"
        return error_type, message
