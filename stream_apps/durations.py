"""Durations as people write them in specs and flags (`500ms`, `60s`, `5m`, `1h`), held as microseconds.

Event times inside the engine are integer microseconds since the Unix epoch (UTC), so window maths is
exact integer arithmetic; these helpers convert at the edges.
"""

from __future__ import annotations

import datetime as dt
import re

from core.errors import ConfigError

US_PER_S = 1_000_000
_UNITS_US = {
    "us": 1,
    "ms": 1_000,
    "s": US_PER_S,
    "m": 60 * US_PER_S,
    "h": 3600 * US_PER_S,
    "d": 86400 * US_PER_S,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)\s*$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_duration_us(text: str, what: str = "duration") -> int:
    """`"90s"` -> 90_000_000. Raises ConfigError naming `what` for anything else."""
    match = _DURATION.match(str(text))
    if not match:
        msg = f"{what}: {text!r} is not a duration; write a number and a unit like 500ms, 60s, 5m, 1h or 1d"
        raise ConfigError(msg)
    value = float(match.group(1)) * _UNITS_US[match.group(2)]
    if value <= 0 or value != int(value):
        msg = f"{what}: {text!r} must be a positive whole number of microseconds"
        raise ConfigError(msg)
    return int(value)


def format_duration(us: int) -> str:
    """The shortest exact spelling: 60_000_000 -> `1m`, 90_000_000 -> `90s`."""
    for unit in ("d", "h", "m", "s", "ms"):
        if us % _UNITS_US[unit] == 0:
            return f"{us // _UNITS_US[unit]}{unit}"
    return f"{us}us"


def datetime_to_us(moment: dt.datetime) -> int:
    """Exact microseconds since the epoch for an aware datetime (no float rounding)."""
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * US_PER_S + delta.microseconds


class TimeParser:
    """`parse_time_us` with a fast path for core.events' own format (`YYYY-MM-DDTHH:MM:SS.ffffffZ`):
    the minute is parsed once and cached, the seconds are read directly."""

    def __init__(self) -> None:
        self._minutes: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if len(text) == 27 and text[26] == "Z" and text[19] == "." and text[16] == ":":
            minute = self._minutes.get(text[:16])
            if minute is None:
                if len(self._minutes) > 100_000:
                    self._minutes.clear()
                minute = self._minutes[text[:16]] = parse_time_us(text[:16] + "Z")
            seconds = text[17:19]
            fraction = text[20:26]
            if seconds.isdigit() and fraction.isdigit() and seconds < "60":
                return minute + int(seconds) * US_PER_S + int(fraction)
        return parse_time_us(text)


def parse_time_us(text: str) -> int:
    """ISO-8601 with an offset or `Z` (as core.events formats it) -> microseconds since the epoch."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        msg = f"{text!r} has no UTC offset"
        raise ValueError(msg)
    return datetime_to_us(moment)


def format_time_us(us: int) -> str:
    """Microseconds since the epoch -> `2019-01-22T00:26:16.000000Z` (the format of core.events)."""
    return (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
