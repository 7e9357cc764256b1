"""Whether a file's records fit the topic they are sent to, checked before anything is sent.

`clickstream.events` carries the clickstream event of `core/events.py`, and its delivery stream
converts every record to that declared schema: a record without `visitor_id`, `is_bot` or
`source` (fields that are never null there) fails the conversion and lands in the lake's error
prefix. Access-log lines always have them; a CSV of sensor readings never does. So replaying such a
file into `clickstream.events` is refused up front, with the topic or format to use instead, rather
than filling the error prefix in silence. Other topics have no declared schema: anything goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from core.errors import ConfigError
from core.events import CLICKSTREAM_FIELDS, EVENT_TIME_FIELD
from core.topics import CLICKSTREAM_EVENTS
from producers.records import Record, Reject

#: Fields every event on clickstream.events has (not nullable in core/events.py), besides the
#: `event_id` and `event_time` that every published record gets.
CLICKSTREAM_REQUIRED = tuple(
    name
    for name, _, nullable in CLICKSTREAM_FIELDS
    if not nullable and name not in ("event_id", EVENT_TIME_FIELD)
)
#: How many leading rejects are looked past to find the first record to check.
PEEK_LIMIT = 10_000


def first_record_checked(
    items: Iterator[Record | Reject], topic: str, path: Path | None, fmt: str
) -> Iterator[Record | Reject]:
    """`items` unchanged, once its first record is known to fit `topic`.

    Reads ahead to the first record (past at most `PEEK_LIMIT` rejects, which are kept and come
    first). Raises `ConfigError` when the topic is clickstream.events and that record lacks a field
    of `CLICKSTREAM_REQUIRED`; the message names the missing fields and what to run instead.
    """
    if topic != CLICKSTREAM_EVENTS:
        return items
    ahead: list[Record | Reject] = []
    for item in items:
        ahead.append(item)
        if isinstance(item, Record):
            missing = [name for name in CLICKSTREAM_REQUIRED if name not in item.fields]
            if missing:
                raise ConfigError(_refusal(topic, path, fmt, missing, list(item.fields)))
            break
        if len(ahead) >= PEEK_LIMIT:
            break
    return chain(ahead, items)


def _refusal(topic: str, path: Path | None, fmt: str, missing: list[str], fields: list[str]) -> str:
    own_topic = re.sub(r"[^a-zA-Z0-9._-]+", "-", path.stem).strip("-.") if path is not None else ""
    return (
        f"{path} ({fmt}) does not hold clickstream events: its rows have {', '.join(fields) or 'no fields'} "
        f"but no {', '.join(missing)}, which every event on {topic} has (core/events.py), so the "
        f"clickstream-events delivery stream would put every one in the lake's error prefix. Nothing "
        f"was sent. Replay it into a topic of its own (--topic {own_topic or 'NAME'}); or, if it is a "
        "web-server access log, give --format combined."
    )
