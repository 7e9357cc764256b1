"""Dates of a date-projected partition key: a Java DateTimeFormatter pattern, read and written.

    pattern = DatePattern.parse("yyyy/MM/dd/HH")  # ValueError (with why) for a pattern tidelake refuses
    pattern.format(datetime(2024, 3, 5, 10, tzinfo=UTC))  # "2024/03/05/10"
    pattern.read("2024/03/05/10")  # datetime(2024, 3, 5, 10, tzinfo=UTC); None when it does not fit
    add_units(moment, 3, "MONTHS")  # OverflowError outside years 1-9999

The letters read are `y u M d H m s S` (as Java's DateTimeFormatterBuilder maps them: one `d H m s M`
is 1-2 digits, two are exactly 2; `yy` is 2 digits from 2000, other `y` runs at least that many
digits; `MMM`/`MMMM` a month's English short/full name; `S...` that many digits of the second's
fraction), quoted text ('' is a quote) and punctuation. A pattern is at most `MAX_PATTERN` characters
and `MAX_FIELDS` fields.

Reading is one left-to-right pass with no backtracking, as Java's parser does: a variable-width
field takes the digits there are, up to its maximum, less the widths of the fixed-width fields right
after it (Java's "adjacent value parsing", so `yyyyMMdd` reads `20240305`). Each field looks at a
bounded number of characters, so reading a text is linear in its length whatever the pattern.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: Longest pattern and most date fields tidelake reads (AWS's examples use 4-7 fields).
MAX_PATTERN = 64
MAX_FIELDS = 16
_MAX_YEAR_DIGITS = 19  # Java's limit for a year field
_MONTHS = [calendar.month_abbr[i] for i in range(1, 13)]
_MONTH_NAMES = [calendar.month_name[i] for i in range(1, 13)]
_LETTERS = "yuMdHmsS"


@dataclass(frozen=True)
class DatePattern:
    """A Java DateTimeFormatter pattern as tokens: (letter, width) or ('', literal text)."""

    pattern: str
    tokens: tuple[tuple[str, Any], ...]

    @classmethod
    def parse(cls, pattern: str) -> DatePattern:
        """The pattern's tokens; ValueError saying why for one tidelake does not read."""
        if len(pattern) > MAX_PATTERN:
            raise ValueError(f"is {len(pattern)} characters long, more than tidelake reads ({MAX_PATTERN})")
        tokens: list[tuple[str, Any]] = []
        i = 0
        while i < len(pattern):
            char = pattern[i]
            if char == "'" and pattern[i + 1 : i + 2] == "'":
                tokens.append(("", "'"))  # '' is a quote
                i += 2
            elif char == "'":
                text, j = [], i + 1
                while True:
                    if j >= len(pattern):
                        raise ValueError(f"{pattern!r} has an unclosed quote")
                    if pattern[j] == "'" and pattern[j + 1 : j + 2] == "'":
                        text.append("'")
                        j += 2
                    elif pattern[j] == "'":
                        break
                    else:
                        text.append(pattern[j])
                        j += 1
                tokens.append(("", "".join(text)))
                i = j + 1
            elif char.isalpha():
                run = len(pattern[i:]) - len(pattern[i:].lstrip(char))
                if char not in _LETTERS:
                    raise ValueError(
                        f"{pattern!r}: pattern letter {char!r} is not read by tidelake (y u M d H m s S are)"
                    )
                too_long = {"M": 4, "S": 9, "y": _MAX_YEAR_DIGITS, "u": _MAX_YEAR_DIGITS}.get(char, 2)
                if run > too_long:
                    raise ValueError(f"{pattern!r}: too many pattern letters {char!r} (at most {too_long})")
                tokens.append(("y" if char == "u" else char, run))
                i += run
            else:
                tokens.append(("", char))
                i += 1
        fields = sum(1 for letter, _ in tokens if letter)
        if not fields:
            raise ValueError(f"{pattern!r} holds no date field")
        if fields > MAX_FIELDS:
            raise ValueError(f"{pattern!r} has {fields} date fields, more than tidelake reads ({MAX_FIELDS})")
        return cls(pattern, tuple(tokens))

    def letters(self) -> set[str]:
        return {letter for letter, _ in self.tokens if letter}

    def format(self, moment: datetime) -> str:
        out = []
        for letter, width in self.tokens:
            if not letter:
                out.append(width)
            elif letter == "y":
                out.append(f"{moment.year % 100:02d}" if width == 2 else f"{moment.year:0{width}d}")
            elif letter == "M" and width >= 3:
                out.append((_MONTHS if width == 3 else _MONTH_NAMES)[moment.month - 1])
            elif letter == "S":
                out.append(f"{moment.microsecond:06d}"[:width].ljust(width, "0"))
            else:
                value = {
                    "M": moment.month,
                    "d": moment.day,
                    "H": moment.hour,
                    "m": moment.minute,
                    "s": moment.second,
                }[letter]
                out.append(f"{value:0{width}d}")
        return "".join(out)

    def read(self, text: str) -> datetime | None:
        """The UTC moment `text` spells in this pattern (missing fields at their start), or None."""
        text = text.strip()
        parts = {"y": 1970, "M": 1, "d": 1, "H": 0, "m": 0, "s": 0, "S": 0}
        at = 0
        for index, (letter, width) in enumerate(self.tokens):
            if not letter:
                if not text.startswith(width, at):
                    return None
                at += len(width)
            elif letter == "M" and width >= 3:
                names = _MONTHS if width == 3 else _MONTH_NAMES
                found = [n for n in names if text.startswith(n, at)]
                if not found:
                    return None
                name = max(found, key=len)
                parts["M"] = names.index(name) + 1
                at += len(name)
            else:
                least, most = _widths(letter, width)
                reserved = self._reserved(index) if least != most else 0
                available = 0
                while available < most + reserved and text[at + available : at + available + 1].isascii():
                    if not text[at + available : at + available + 1].isdigit():
                        break
                    available += 1
                digits = min(most, available - reserved)
                if digits < least:
                    return None
                value = text[at : at + digits]
                at += digits
                if letter == "y" and width == 2:
                    parts["y"] = 2000 + int(value)
                elif letter == "S":
                    parts["S"] = int(value.ljust(6, "0")[:6])
                else:
                    parts[letter] = int(value)
        if at != len(text):
            return None
        try:
            return datetime(
                parts["y"], parts["M"], parts["d"], parts["H"], parts["m"], parts["s"], parts["S"], tzinfo=UTC
            )
        except ValueError:
            return None

    def _reserved(self, index: int) -> int:
        """Digits the fixed-width numeric fields right after token `index` need."""
        total = 0
        for letter, width in self.tokens[index + 1 :]:
            if not letter or (letter == "M" and width >= 3):
                break
            least, most = _widths(letter, width)
            if least != most:
                break
            total += least
        return total


def _widths(letter: str, width: int) -> tuple[int, int]:
    """(fewest, most) digits of a numeric field."""
    if letter == "y":
        return (2, 2) if width == 2 else (width, max(width, 9))
    if letter == "S":
        return width, width
    return (1, 2) if width == 1 else (width, width)


def add_units(moment: datetime, count: int, unit: str) -> datetime:
    """`moment` plus `count` (may be negative) calendar `unit`s (a month's day is clamped: Jan 31 + 1
    month = Feb 28/29, as Java's ZonedDateTime.plus does); OverflowError outside years 1-9999."""
    if unit in ("YEARS", "MONTHS"):
        months = moment.month - 1 + count * (12 if unit == "YEARS" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        if not 1 <= year <= 9999:
            raise OverflowError(f"year {year} is outside 1-9999")
        return moment.replace(
            year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
        )
    return moment + STEPS[unit] * count


STEPS = {
    "WEEKS": timedelta(weeks=1),
    "DAYS": timedelta(days=1),
    "HOURS": timedelta(hours=1),
    "MINUTES": timedelta(minutes=1),
    "SECONDS": timedelta(seconds=1),
    "MILLIS": timedelta(milliseconds=1),
}


def steps_between(low: datetime, high: datetime, interval: int, unit: str) -> int:
    """How many values `low + k * interval unit` (k >= 0) are <= `high`: arithmetic, no stepping."""
    if high < low:
        return 0
    if unit in ("YEARS", "MONTHS"):
        months = (high.year - low.year) * 12 + high.month - low.month
        span = months // (12 if unit == "YEARS" else 1)
        k = span // interval
        # the day is clamped, so the k-th value may still pass `high` (e.g. Jan 31 .. Feb 28)
        while k >= 0:
            try:
                if add_units(low, k * interval, unit) <= high:
                    break
            except OverflowError:
                pass
            k -= 1
        return k + 1
    try:
        step = STEPS[unit] * interval
    except OverflowError:  # a step longer than any range: only `low`
        return 1
    return (high - low) // step + 1
