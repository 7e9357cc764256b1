"""SQL types of stream columns and how a JSON value becomes one (input) or leaves as one (output).

Types as the KDA SQL reference lists them (AWS, "Data Types"): CHAR/VARCHAR(n), SMALLINT, TINYINT,
INTEGER/INT, BIGINT, REAL, FLOAT, DOUBLE, DECIMAL/NUMERIC(p, s), BOOLEAN, TIMESTAMP. Categories
(`text`, `integer`, `number`, `boolean`, `timestamp`) are what type checks compare.

Timestamps are timezone-aware UTC datetimes inside a program and ISO-8601 UTC with microseconds
and `Z` in output rows (`2026-01-27T10:00:00.000000Z`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream_apps.kda_sql.refusals import SourceText

_CATEGORIES = {
    "CHAR": "text", "VARCHAR": "text", "SMALLINT": "integer", "TINYINT": "integer", "INTEGER": "integer",
    "INT": "integer", "BIGINT": "integer", "REAL": "number", "FLOAT": "number", "DOUBLE": "number",
    "DECIMAL": "number", "NUMERIC": "number", "BOOLEAN": "boolean", "TIMESTAMP": "timestamp",
}  # fmt: skip
_TYPE = re.compile(r"^([A-Za-z]+)(?:\s+PRECISION)?\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$", re.IGNORECASE)


@dataclass(frozen=True)
class SqlType:
    """A column type: `name` as written (upper case), its length or precision, its category."""

    name: str
    size: int | None = None
    scale: int | None = None

    @property
    def category(self) -> str:
        return _CATEGORIES[self.name]

    @property
    def spelling(self) -> str:
        if self.size is None:
            return self.name
        return f"{self.name}({self.size}{'' if self.scale is None else f', {self.scale}'})"

    def coerce(self, value: Any) -> Any:
        """A JSON value as this type; None stays None. ValueError says what did not fit."""
        if value is None:
            return None
        category = self.category
        if category == "text":
            text = value if isinstance(value, str) else _json_text(value)
            if self.size is not None and len(text) > self.size:
                msg = f"{len(text)} characters do not fit {self.spelling}"
                raise ValueError(msg)
            return text
        if category == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            msg = f"{value!r} is not a BOOLEAN"
            raise ValueError(msg)
        if category == "timestamp":
            return to_timestamp(value)
        if isinstance(value, bool):
            msg = f"{value!r} is not a number"
            raise ValueError(msg)
        if category == "integer":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
                return int(value)
            msg = f"{value!r} is not an integer"
            raise ValueError(msg)
        if isinstance(value, int | float):
            return float(value) if self.name != "DECIMAL" else value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        msg = f"{value!r} is not a number"
        raise ValueError(msg)

    def output(self, value: Any) -> Any:
        """A value of this column as it goes into a JSON output row."""
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return format_timestamp(value)
        if isinstance(value, Decimal):
            return float(value)
        category = self.category
        if category == "timestamp" and isinstance(value, str):
            try:
                return format_timestamp(to_timestamp(value))
            except ValueError:
                return value  # text that is no time goes out as it came (the column's type is a promise)
        if category == "integer" and isinstance(value, float):
            return int(value)  # SQL's CAST to an integer type truncates
        if category == "number" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if category == "text" and not isinstance(value, str):
            return _json_text(value)
        return value


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    return str(value)


def to_timestamp(value: Any) -> dt.datetime:
    """ISO-8601 text (a missing offset is UTC) or a datetime -> aware UTC datetime; ValueError otherwise."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        moment = dt.datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    msg = f"{value!r} is not a TIMESTAMP (write ISO-8601 text)"
    raise ValueError(msg)


def format_timestamp(moment: dt.datetime) -> str:
    """`2026-01-27T10:00:00.000000Z`: ISO-8601 UTC with microseconds, as every tidelake row."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_type(source: SourceText, text: str, offset: int) -> SqlType:
    """`VARCHAR(256)` -> SqlType("VARCHAR", 256); a type outside the list is refused at `offset`."""
    match = _TYPE.match(text.strip())
    name = match.group(1).upper() if match else ""
    if not match or name not in _CATEGORIES:
        known = "VARCHAR(n), CHAR(n), INTEGER, BIGINT, SMALLINT, TINYINT, DOUBLE, REAL, DECIMAL(p, s), BOOLEAN, TIMESTAMP"
        raise source.refuse(offset, f"type {text.strip()!r} is not supported", f"use one of {known}")
    size = int(match.group(2)) if match.group(2) else None
    scale = int(match.group(3)) if match.group(3) else None
    return SqlType(name, size, scale)
