"""Window maths and durations with fixed UTC datetimes."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import ConfigError
from stream_apps.durations import (
    TimeParser,
    datetime_to_us,
    format_duration,
    format_time_us,
    parse_duration_us,
    parse_time_us,
)
from stream_apps.windows import (
    WindowSpec,
    fixed_starts,
    hopping_starts,
    parse_window,
    session_continues,
    sliding_bounds,
    stagger_continues,
    tumbling_start,
)

UTC = dt.UTC
S = 1_000_000


def us(*args: int) -> int:
    return datetime_to_us(dt.datetime(*args, tzinfo=UTC))


def test_tumbling_start_floors_to_the_minute() -> None:
    t = us(2019, 1, 22, 0, 26, 14, 999_999)
    assert tumbling_start(t, 60 * S) == us(2019, 1, 22, 0, 26)


def test_tumbling_boundary_event_opens_the_next_window() -> None:
    assert tumbling_start(us(2019, 1, 22, 0, 27), 60 * S) == us(2019, 1, 22, 0, 27)


def test_tumbling_start_before_1970_floors_downwards() -> None:
    assert tumbling_start(us(1969, 12, 31, 23, 59, 30), 60 * S) == us(1969, 12, 31, 23, 59)


def test_hopping_event_is_in_size_over_step_windows_oldest_first() -> None:
    t = us(2019, 1, 22, 0, 26, 14)
    starts = hopping_starts(t, 300 * S, 60 * S)
    assert starts == [us(2019, 1, 22, 0, m) for m in (22, 23, 24, 25, 26)]
    assert all(s <= t < s + 300 * S for s in starts)


def test_fixed_starts_of_a_tumbling_spec() -> None:
    assert fixed_starts(parse_window("tumbling:1h"), us(2019, 1, 22, 5, 59, 59)) == [us(2019, 1, 22, 5)]


def test_sliding_window_holds_the_preceding_size_up_to_the_event() -> None:
    t = us(2019, 1, 22, 0, 1)
    start, end = sliding_bounds(t, 60 * S)
    assert (start, end) == (us(2019, 1, 22, 0, 0) + 1, t + 1)


def test_session_continues_strictly_within_the_gap() -> None:
    last = us(2019, 1, 22, 0, 0)
    assert session_continues(last, last + 30 * 60 * S - 1, 30 * 60 * S)
    assert not session_continues(last, last + 30 * 60 * S, 30 * 60 * S)


def test_stagger_window_ends_size_after_its_first_event() -> None:
    start = us(2019, 1, 22, 0, 0, 17)
    assert stagger_continues(start, start + 59 * S, 60 * S)
    assert not stagger_continues(start, start + 60 * S, 60 * S)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("tumbling:60s", WindowSpec("tumbling", 60 * S)),
        ("hopping:300s/60s", WindowSpec("hopping", 300 * S, 60 * S)),
        ("hopping:5m/1m", WindowSpec("hopping", 300 * S, 60 * S)),
        ("sliding:60s", WindowSpec("sliding", 60 * S)),
        ("session:30m", WindowSpec("session", 1800 * S)),
        ("stagger:1m", WindowSpec("stagger", 60 * S)),
    ],
)
def test_parse_window_spellings(text: str, spec: WindowSpec) -> None:
    assert parse_window(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tumbling", "KIND:SIZE"),
        ("rolling:60s", "KIND:SIZE"),
        ("hopping:300s", "SIZE/STEP"),
        ("hopping:300s/70s", "the step must divide the size"),
        ("tumbling:sixty", "is not a duration"),
        ("session:0s", "positive"),
    ],
)
def test_bad_windows_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_window(text)


def test_window_spelling_round_trips() -> None:
    assert parse_window("hopping:300s/60s").spelling == "hopping:5m/1m"
    assert parse_window("session:90s").spelling == "session:90s"


def test_durations_parse_and_format_exactly() -> None:
    assert parse_duration_us("500ms") == 500_000
    assert parse_duration_us("1.5s") == 1_500_000
    assert parse_duration_us("2h") == 7200 * S
    assert format_duration(90 * S) == "90s"
    assert format_duration(3600 * S) == "1h"
    assert format_duration(1500) == "1500us"


def test_event_time_round_trips_through_core_events_format() -> None:
    text = "2019-01-22T00:26:14.000123Z"
    assert parse_time_us(text) == us(2019, 1, 22, 0, 26, 14, 123)
    assert format_time_us(parse_time_us(text)) == text


def test_event_time_with_offset_is_converted_to_utc() -> None:
    assert parse_time_us("2019-01-22T03:56:14+03:30") == us(2019, 1, 22, 0, 26, 14)


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_time_us("2019-01-22T00:26:14")


@pytest.mark.parametrize(
    "text",
    ["2019-01-22T00:26:14.000123Z", "2019-01-22T00:26:59.999999Z", "1969-12-31T23:59:59.500000Z",
     "2019-01-22T03:56:14+03:30", "2019-01-22T00:26:14Z"],
)  # fmt: skip
def test_fast_time_parser_agrees_with_the_general_one(text: str) -> None:
    parser = TimeParser()
    assert parser(text) == parse_time_us(text)
    assert parser(text) == parse_time_us(text)  # second call hits the minute cache
