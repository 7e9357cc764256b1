"""Replay speed modes as logic: order and relative gaps, never wall-clock timings."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from producers.pacing import MAX_SPEED, RATE, SPEED, Pace, Schedule, loop_shift_us

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
