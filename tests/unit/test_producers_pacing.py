"""Replay speed modes as logic: order and relative gaps, never wall-clock timings; and where a
looping or resumed replay puts each pass."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from producers.pacing import MAX_SPEED, RATE, SPEED, Pace, Schedule, first_pass_after, loop_shift_us
from producers.records import pass_event_id
from producers.resume import TopicTail, id_ends, pass_of, start_pass

SECOND = 1_000_000
TIMES = [100 * SECOND, 101 * SECOND, 101 * SECOND, 105 * SECOND, 104 * SECOND, 110 * SECOND]


def _dues(pace: Pace) -> list[float]:
    schedule = Schedule(pace, TIMES[0])
    return [schedule.due_s(i, t) for i, t in enumerate(TIMES)]


def test_original_pace_keeps_the_original_gaps() -> None:
    assert _dues(Pace.from_flags()) == [0.0, 1.0, 1.0, 5.0, 4.0, 10.0]


def test_speed_divides_every_gap() -> None:
    assert _dues(Pace.from_flags(speed=4)) == [0.0, 0.25, 0.25, 1.25, 1.0, 2.5]


def test_an_event_earlier_than_its_predecessor_is_due_no_later_than_it() -> None:
    dues = _dues(Pace.from_flags(speed=2))
    assert dues[4] < dues[3]  # the replay sends it right after line 4, in file order


def test_rate_spaces_events_evenly_whatever_their_times() -> None:
    assert _dues(Pace.from_flags(rate=4)) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]


def test_max_speed_makes_everything_due_at_once() -> None:
    assert _dues(Pace.from_flags(max_speed=True)) == [0.0] * 6


def test_pace_modes_from_flags() -> None:
    assert Pace.from_flags() == Pace(SPEED, 1.0)
    assert Pace.from_flags(rate=50) == Pace(RATE, 50)
    assert Pace.from_flags(max_speed=True) == Pace(MAX_SPEED)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"speed": 2, "rate": 5}, "--speed and --rate exclude each other"),
        ({"rate": 5, "max_speed": True}, "--rate and --max-speed"),
        ({"speed": 0}, "--speed must be more than 0"),
        ({"rate": -1}, "--rate must be more than 0"),
    ],
)
def test_conflicting_or_impossible_paces_are_refused(flags: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Pace.from_flags(**flags)


def test_each_loop_pass_continues_one_average_gap_after_the_last() -> None:
    first, last = TIMES[0], max(TIMES)
    shift = loop_shift_us(1, first, last, len(TIMES))
    assert shift == 10 * SECOND + 2 * SECOND  # span 10 s + average gap 10 s / 5
    assert first + shift > last
    assert loop_shift_us(3, first, last, len(TIMES)) == 3 * shift


def test_loop_of_a_single_event_moves_one_second_a_pass() -> None:
    assert loop_shift_us(2, 7, 7, 1) == 2 * SECOND


# -- where a resumed replay starts (producers.resume) -------------------------------------------
# TIMES span 100 s .. 110 s over 6 events: a pass moves them 12 s (span 10 s + average gap 2 s).
FIRST, LAST = TIMES[0], max(TIMES)


@pytest.mark.parametrize(
    ("after_s", "expected"),
    [
        (99, 0),  # before the file's first event: pass 0 is all later
        (100, 1),  # equal is not later: pass 0 starts at 100 s itself
        (110, 1),  # the end of pass 0; pass 1 starts at 112 s
        (111, 1),
        (112, 2),  # pass 1 starts exactly then
        (122, 2),  # the end of pass 1
        (123, 2),
        (124, 3),
        (100 + 12 * 1_000, 1_001),
    ],
)
def test_first_pass_after_a_time_is_the_first_entirely_later_pass(after_s: int, expected: int) -> None:
    assert first_pass_after(after_s * SECOND, FIRST, LAST, len(TIMES)) == expected
    if expected:
        assert FIRST + loop_shift_us(expected, FIRST, LAST, len(TIMES)) > after_s * SECOND
        assert FIRST + loop_shift_us(expected - 1, FIRST, LAST, len(TIMES)) <= after_s * SECOND


def test_first_pass_after_one_event_moves_one_second_a_pass() -> None:
    assert first_pass_after(7 * SECOND, 7 * SECOND, 7 * SECOND, 1) == 1
    assert first_pass_after(9 * SECOND + 1, 7 * SECOND, 7 * SECOND, 1) == 3


ID = "de8da95bcdcce7940424a9ae1d8d4257"
ENDS = id_ends([ID, "0123456789abcdef0123456789abcdef"])


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        (ID, 0),  # the line's own id: pass 0
        (pass_event_id(ID, 1), 1),
        (pass_event_id(ID, 0x2A), 42),
        ("0123456789abcdef0123456700000005", 5),
        ("ffffffffffffffffffffffff00000001", None),  # a line of another file
        ("de8da95bcdcce7940424a9aezzzzzzzz", None),  # not a pass number
        ("short", None),
        (None, None),
        (12, None),
    ],
)
def test_pass_of_an_event_id_from_its_last_eight_hex_digits(event_id: object, expected: int | None) -> None:
    assert pass_of(event_id, ENDS) == expected


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (TopicTail(), 0),  # the topic holds nothing of the file
        (TopicTail(last_pass=0, latest_time_us=LAST), 1),
        (
            TopicTail(last_pass=0, latest_time_us=FIRST + 3 * SECOND),
            1,
        ),  # pass 0's last lines were at its tail
        (TopicTail(last_pass=4, latest_time_us=LAST + 4 * 12 * SECOND), 5),
        # the latest time is further on than the highest pass (a run with --rebase-time): time decides
        (TopicTail(last_pass=0, latest_time_us=LAST + 30 * SECOND), 4),
        (TopicTail(last_pass=2, latest_time_us=None), 3),
    ],
)
def test_a_resumed_replay_starts_after_the_highest_pass_and_the_latest_time(
    tail: TopicTail, expected: int
) -> None:
    assert start_pass(tail, FIRST, LAST, len(TIMES)) == expected
