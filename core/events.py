"""The clickstream event: what producers publish on `clickstream.events` and sinks store in the lake.

JSON on the wire; one Parquet column per field in the lake. Access-log lines become exactly these
fields. Generic CSV/JSONL sources keep their own fields plus `event_id`, `event_time` and their key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: (field, Parquet/DuckDB type, nullable) in the order the lake stores them.
CLICKSTREAM_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("event_id", "string", False),  # stable hash of source + line number + content, for dedup
    ("event_time", "timestamp[us, UTC]", False),  # when the request happened
    ("visitor_id", "string", False),  # hash of client IP + user agent; the partition key
    ("method", "string", True),
    ("url", "string", True),
    ("page", "string", True),  # the path without its query string
    ("referrer", "string", True),
    ("status", "int32", True),
    ("bytes", "int64", True),
    ("user_agent", "string", True),
    ("is_bot", "bool", False),
    ("source", "string", False),  # dataset name, e.g. zanbil-access-10k
)

#: The payload field that carries event time, and the key of the topic.
EVENT_TIME_FIELD = "event_time"
KEY_FIELD = "visitor_id"


def format_event_time(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with microseconds and a `Z`: `2019-01-22T00:26:16.000000Z`."""
    if moment.tzinfo is None:
        msg = f"event times must be timezone-aware, got naive {moment!r}"
        raise ValueError(msg)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_event_time(text: str) -> dt.datetime:
    """The inverse of `format_event_time` (any ISO-8601 with an offset is accepted)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        msg = f"event_time {text!r} has no UTC offset"
        raise ValueError(msg)
    return moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class ClickstreamEvent:
    """One request in a web-server log, as published on `clickstream.events`."""

    event_id: str
    event_time: dt.datetime
    visitor_id: str
    method: str | None
    url: str | None
    page: str | None
    referrer: str | None
    status: int | None
    bytes: int | None
    user_agent: str | None
    is_bot: bool
    source: str

    def to_json_dict(self) -> dict[str, object]:
        return {
            name: format_event_time(value) if name == EVENT_TIME_FIELD else value
            for name, value in ((n, getattr(self, n)) for n, _, _ in CLICKSTREAM_FIELDS)
        }
