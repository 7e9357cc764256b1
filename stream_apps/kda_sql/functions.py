"""SQL's operators and functions over Python values, as KDA SQL defines them (AWS, "Amazon Kinesis
Data Analytics SQL Reference": Operators, Date and Time Functions, String Functions): NULL (None)
propagates, AND/OR/NOT are three-valued, timestamps are aware UTC datetimes. A value that cannot be
computed raises RowError. expressions.py compiles SQL to calls of these.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable
from typing import Any

from stream_apps.kda_sql.columns import to_timestamp

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
INTERVAL_UNITS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


class RowError(ValueError):
    """A row's value cannot be computed (a failed CAST, division by zero): the record is dead-lettered
    with this `error_type` (core/dead_letters.py's `error.type`)."""

    error_type = "sql-evaluation-failed"


#: Java SimpleDateFormat letters (KDA's CHAR_TO_TIMESTAMP / TIMESTAMP_TO_CHAR) -> strftime.
_DATE_FORMAT = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("hh", "%H"), ("mm", "%M"),
                ("ss", "%S"), ("SSS", "%f"), ("a", "%p")]  # fmt: skip


def floor_time(moment: dt.datetime, unit: str) -> dt.datetime:
    if unit == "YEAR":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "MONTH":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    step = dt.timedelta(seconds=INTERVAL_UNITS[unit])
    return EPOCH + ((moment - EPOCH) // step) * step


def java_format(fmt: str) -> str:
    out = fmt
    for java, strf in _DATE_FORMAT:
        out = out.replace(java, strf)
    return out.replace("'T'", "T")


def as_timestamp(value: Any) -> dt.datetime:
    try:
        return to_timestamp(value)
    except ValueError as exc:
        raise RowError(str(exc)) from exc


def like_pattern(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def divide(a: Any, b: Any) -> Any:
    if b == 0:
        msg = "division by zero"
        raise RowError(msg)
    if isinstance(a, int) and isinstance(b, int):
        return int(a / b)  # SQL's integer division truncates toward zero
    return a / b


def compare(op: Callable[[Any, Any], bool], a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, dt.datetime) and isinstance(b, str):
        b = as_timestamp(b)
    elif isinstance(b, dt.datetime) and isinstance(a, str):
        a = as_timestamp(a)
    try:
        return op(a, b)
    except TypeError as exc:
        msg = f"cannot compare {a!r} with {b!r}"
        raise RowError(msg) from exc


def arith(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, str) and isinstance(b, int | float | dt.timedelta):
        a = number_or_time(a)
    if isinstance(b, str) and isinstance(a, int | float | dt.timedelta):
        b = number_or_time(b)
    try:
        return op(a, b)
    except TypeError as exc:
        msg = f"cannot compute {a!r} and {b!r}"
        raise RowError(msg) from exc


def number_or_time(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return as_timestamp(text)


def parse_with_format(fmt: str, text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, java_format(fmt)).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        msg = f"CHAR_TO_TIMESTAMP({fmt!r}, {text!r}): {exc}"
        raise RowError(msg) from exc


def and3(a: Any, b: Any) -> Any:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return bool(a) and bool(b)


def or3(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return bool(a) or bool(b)


def in_list(value: Any, items: list[Any]) -> Any:
    if value is None:
        return None
    if any(compare(operator.eq, value, i) for i in items if i is not None):
        return True
    return None if any(i is None for i in items) else False


def substring(value: Any, start: Any, length: Any) -> Any:
    if value is None or start is None:
        return None
    text = str(value)
    begin = max(int(start) - 1, 0)
    return text[begin:] if length is None else text[begin : max(int(start) - 1 + int(length), 0)]
