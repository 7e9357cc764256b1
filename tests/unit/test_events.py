import dataclasses
import datetime as dt

import pytest

from core.events import CLICKSTREAM_FIELDS, ClickstreamEvent, format_event_time, parse_event_time


def test_event_time_round_trips_in_utc_with_microseconds() -> None:
    tehran = dt.timezone(dt.timedelta(hours=3, minutes=30))
    moment = dt.datetime(2019, 1, 22, 3, 56, 16, 5, tzinfo=tehran)
    text = format_event_time(moment)
    assert text == "2019-01-22T00:26:16.000005Z"
    assert parse_event_time(text) == moment


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_event_time(dt.datetime(2019, 1, 22))
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_event_time("2019-01-22T00:26:16")


def test_event_fields_match_the_declared_schema_in_order() -> None:
    assert [f.name for f in dataclasses.fields(ClickstreamEvent)] == [
        name for name, _, _ in CLICKSTREAM_FIELDS
    ]
    event = ClickstreamEvent(
        "e1",
        dt.datetime(2015, 5, 17, 10, 5, 3, tzinfo=dt.UTC),
        "v1",
        "GET",
        "/a?b=1",
        "/a",
        "-",
        200,
        12,
        "ua",
        False,
        "s",
    )
    payload = event.to_json_dict()
    assert list(payload) == [name for name, _, _ in CLICKSTREAM_FIELDS]
    assert payload["event_time"] == "2015-05-17T10:05:03.000000Z"
    assert payload["status"] == 200
