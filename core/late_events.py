"""The late event: what a stream app writes to `analytics.late-events` for an event whose windows had
already closed, and what the `late-events` delivery stream stores as columns of `lake/late_events`.

Two roles share it (stream_apps write it, sinks declare its columns), so it is declared once here:

    app               the stream app that read it
    topic, partition, offset
                      where it was read (the event whole is there)
    event_time        its event time (UTC, microseconds)
    watermark         the app's watermark when it arrived: everything before was closed
    missed_windows    how many of its windows had closed (hopping windows: some may still count it)
    allowed_lateness  the app's allowance, as its spec writes it ("0s", "30s", "1m")
    event             the event as read (the shipped apps read clickstream events)

KDA SQL has no such output (a late row there is a second, partial result); Flink's side output for
late data is the model (docs/stream_apps.md, "Late events").
"""

from __future__ import annotations

from typing import Any

#: (field, Parquet/DuckDB type, nullable) in the order the lake stores them; `event`'s type is
#: `clickstream`: the clickstream event's fields (core.events.CLICKSTREAM_FIELDS), all optional.
LATE_EVENT_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("app", "string", False),
    ("topic", "string", False),
    ("partition", "int32", False),
    ("offset", "int64", False),
    ("event_time", "timestamp[us, UTC]", False),
    ("watermark", "timestamp[us, UTC]", True),
    ("missed_windows", "int32", True),
    ("allowed_lateness", "string", True),
    ("event", "clickstream", True),
)


def late_event(
    *,
    app: str,
    topic: str,
    partition: int,
    offset: int,
    event_time: str,
    watermark: str,
    missed_windows: int,
    allowed_lateness: str,
    event: dict[str, Any],
) -> dict[str, Any]:
    """The JSON record of one late event, its keys in `LATE_EVENT_FIELDS`' order (times as
    core.events.format_event_time writes them)."""
    return {
        "app": app,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "event_time": event_time,
        "watermark": watermark,
        "missed_windows": missed_windows,
        "allowed_lateness": allowed_lateness,
        "event": event,
    }
