"""Event times as written in logs and files, turned into microseconds since the epoch (UTC).

Recognised: ISO-8601 with an offset or `Z` (a naive one is taken as UTC), epoch seconds,
milliseconds or microseconds (told apart by magnitude), and the access-log form
`22/Jan/2019:03:56:16 +0330`. Output is formatted like `core.events.format_event_time`.
"""

from __future__ import annotations

import datetime as dt

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_US = 86_400_000_000
_EPOCH_ORDINAL = 719_163  # dt.date(1970, 1, 1).toordinal()
_ONE_US = dt.timedelta(microseconds=1)
#: Epoch numbers below this are seconds, below 1e15 milliseconds, else microseconds (year 2286 / 33658).
_SECONDS_BELOW = 10**10
_MILLIS_BELOW = 10**13


def to_micros(moment: dt.datetime) -> int:
    """µs since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // _ONE_US


def from_micros(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def parse_clf_time(text: str) -> int:
    """`22/Jan/2019:03:56:16 +0330` (Apache/nginx `%d/%b/%Y:%H:%M:%S %z`) to µs since the epoch."""
    try:
        day, month, year = int(text[0:2]), _MONTHS[text[3:6]], int(text[7:11])
        hour, minute, second = int(text[12:14]), int(text[15:17]), int(text[18:20])
        sign = -1 if text[21] == "-" else 1
        offset_s = sign * (int(text[22:24]) * 3600 + int(text[24:26]) * 60)
        if len(text) != 26 or text[2] != "/" or text[11] != ":" or text[20] != " ":
            raise ValueError(text)
        days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except (ValueError, KeyError, IndexError) as exc:
        msg = f"time {text!r} is not in the access-log form 22/Jan/2019:03:56:16 +0330"
        raise ValueError(msg) from exc
    if not (hour < 24 and minute < 60 and second < 61):
        msg = f"time {text!r} has an hour, minute or second out of range"
        raise ValueError(msg)
    return days * _DAY_US + (hour * 3600 + minute * 60 + second - offset_s) * 1_000_000


def parse_epoch(number: float) -> int:
    """Epoch seconds, milliseconds or microseconds (by magnitude) to µs since the epoch."""
    magnitude = abs(number)
    if magnitude < _SECONDS_BELOW:
        return round(number * 1_000_000)
    if magnitude < _MILLIS_BELOW:
        return round(number * 1_000)
    return int(number)


def parse_time(value: object) -> int:
    """Any recognised event time (string or number) to µs since the epoch; ValueError otherwise."""
    if isinstance(value, bool) or value is None:
        msg = f"event time {value!r} is neither a number nor a string"
        raise ValueError(msg)
    if isinstance(value, int | float):
        return parse_epoch(value)
    if not isinstance(value, str):
        msg = f"event time {value!r} is neither a number nor a string"
        raise ValueError(msg)
    text = value.strip()
    if not text:
        msg = "event time is empty"
        raise ValueError(msg)
    if len(text) >= 10 and text[4] == "-":  # an ISO date first: the usual form in CSV and JSON
        try:
            return to_micros(dt.datetime.fromisoformat(text))
        except ValueError:
            pass  # perhaps a lowercase `z`; the general path below says what is wrong
    if len(text) == 26 and text[2] == "/" and text[6] == "/":
        return parse_clf_time(text)
    try:
        return parse_epoch(float(text))
    except ValueError:
        pass
    try:
        return to_micros(dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError as exc:
        msg = (
            f"event time {text!r} is not ISO-8601, epoch seconds/ms/µs or 22/Jan/2019:03:56:16 +0330; "
            "pick the right field with --time-field"
        )
        raise ValueError(msg) from exc


class TimeFormatter:
    """Formats µs since the epoch as `2019-01-22T00:26:16.000000Z` (str, or bytes with `as_bytes`).

    Caches the last instant, its second and its day: logs hold many events of the same second.
    """

    __slots__ = ("_day", "_day_text", "_last", "_last_bytes", "_prefix", "_second")

    def __init__(self) -> None:
        self._day = -1 << 62  # no day yet
        self._day_text = b""
        self._second = -1
        self._prefix = b""
        self._last = -1
        self._last_bytes = b""

    def as_bytes(self, micros: int) -> bytes:
        if micros == self._last:
            return self._last_bytes
        second, fraction = divmod(micros, 1_000_000)
        if second != self._second:
            day, in_day = divmod(second, 86_400)
            if day != self._day:
                self._day_text = dt.date.fromordinal(day + _EPOCH_ORDINAL).isoformat().encode()
                self._day = day
            hour, in_hour = divmod(in_day, 3600)
            self._prefix = b"%sT%02d:%02d:%02d." % (self._day_text, hour, in_hour // 60, in_hour % 60)
            self._second = second
        self._last = micros
        self._last_bytes = b"%s%06dZ" % (self._prefix, fraction)
        return self._last_bytes

    def __call__(self, micros: int) -> str:
        return self.as_bytes(micros).decode()
