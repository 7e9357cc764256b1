"""Partition projection: a Glue table's partitions computed from its table properties, not listed.

    projection = parse_projection(parameters, [("dt", "string"), ("hour", "int")])  # None when off
    rows = projection.partitions({"dt": [("=", "2024/01/02")]}, now=datetime(..., tzinfo=UTC))
    # [ProjectedPartition(path_values=["2024/01/02", "00"], column_values=["2024/01/02", "0"]), ...]
    uri = projection.location("s3://tidelake-lake/logs/", rows[0])

The rules are AWS's ("Partition projection with Amazon Athena", "Supported types for partition
projection", "Use dynamic ID partitioning", "Specify custom S3 storage locations"):
- `projection.enabled` = `true` (any case) turns it on; then every partition key needs
  `projection.<key>.type`, one of `enum`, `integer`, `date`, `injected` (any case, blanks around);
  catalog partitions (MSCK REPAIR, ADD PARTITION) are ignored, as on AWS.
- **enum**: `projection.<key>.values`, comma-separated; white space is part of a value.
- **integer**: `projection.<key>.range` `min,max` (inclusive, may be negative or have leading zeros,
  within a Java long), optional `.interval` (positive, default 1) and `.digits` (zero-padded width).
- **date**: `projection.<key>.format` (a Java DateTimeFormatter pattern; tidelake reads the letters
  `y u M d H m s S`, quoted text and punctuation: `queries.projection_dates`), `.range` of two dates in that format or
  `NOW[+|-<n><unit>]` (units YEARS, MONTHS, WEEKS, DAYS, HOURS, MINUTES, SECONDS, singular or
  plural, any case; UTC), optional `.interval` (default 1) and `.interval.unit` (YEARS, MONTHS,
  WEEKS, DAYS, HOURS, MINUTES, SECONDS, MILLIS; required when the format is finer than a day, else
  DAYS for a format with a day, MONTHS with a month, YEARS with only a year). A bound is truncated
  to the format's precision, so `NOW` on an hourly format is the current hour.
- **injected**: the values come from the query: its WHERE must hold at least one equality (`=` or
  `IN`) with literals for the key, else the query fails with Athena's CONSTRAINT_VIOLATION.
- `storage.location.template`: `s3://bucket/prefix/${key}/...` with every key's placeholder; without
  it a partition is `<table location>/<key>=<value>/...` (Hive style, the value escaped as Hive does).

Filters narrow the values before any folder is looked at: `partitions(constraints)` keeps the
values that satisfy each (operator, literal) constraint compared in the key's declared type
(string, integer, date, timestamp). A constraint whose literal cannot be compared is ignored (it
only narrows). At most `MAX_VALUES` values are enumerated per key and `MAX_PARTITIONS` partitions
returned (tidelake's limits; AWS states none), else ProjectionError says which key to filter; both
are counted arithmetically first (a key no constraint narrows is never enumerated to be counted).
`.interval` and `.digits` are ASCII integers of at most 19 digits (a Java long's), `.digits` <= 19.
Config errors are ProjectionError (a QueryError) naming the property, when the table is queried:
parse_projection and Projection.partitions raise nothing else, so one table's bad properties fail
only the queries that read it (Glue stores Parameters as given, as AWS's does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import product
from typing import Any

from core.errors import QueryError
from queries.projection_compare import INTEGER_TYPES, Constraint, Filter, text_of
from queries.projection_dates import DatePattern, add_units, steps_between

#: Enumerated values per projected key, and partitions per query and table (tidelake's limits).
MAX_VALUES = 1_000_000
MAX_PARTITIONS = 100_000
_JAVA_LONG = (-(2**63), 2**63 - 1)
_UNITS = ("YEARS", "MONTHS", "WEEKS", "DAYS", "HOURS", "MINUTES", "SECONDS", "MILLIS")
_NOW = re.compile(
    r"^\s*NOW\s*(?:([+-])\s*([0-9]+)\s*(YEAR|MONTH|WEEK|DAY|HOUR|MINUTE|SECOND)S?\s*)?$", re.IGNORECASE
)
_HIVE_UNSAFE = set("\"#%'*/:=?\\{[]^\x7f")
_MAX_DIGITS = 19  # `projection.<key>.digits` and `.interval`: a Java long has 19 digits


class ProjectionError(QueryError):
    """A projected table's properties or a query's filter that Athena would refuse; says which."""


def constraint_violation(column: str) -> ProjectionError:
    """Athena's error for an injected key without a static equality filter."""
    msg = (
        f"CONSTRAINT_VIOLATION: For the injected projected partition column {column}, the WHERE clause "
        "must contain only static equality conditions, and at least one such condition must be present."
    )
    return ProjectionError(msg)


# -- one key's projection ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectedValue:
    """One value of a key: `path` as the folder spells it, `column` as the typed column reads it."""

    path: str
    column: str


@dataclass(frozen=True)
class KeyProjection:
    """How one partition key is projected (see the module docstring)."""

    name: str
    athena_type: str
    kind: str
    enum_values: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    interval: int = 1
    digits: int | None = None
    pattern: DatePattern | None = None
    date_range: tuple[str, str] = ("", "")
    unit: str = "DAYS"

    def values(self, constraints: list[Constraint], now: datetime) -> list[ProjectedValue]:
        """The key's values that satisfy every constraint, in order."""
        keeps = Filter(self.athena_type, constraints)
        if self.kind == "injected":
            equal = [c for c in constraints if c[0] in ("=", "in")]
            if not equal or len(equal) != len(constraints):
                raise constraint_violation(self.name)
            chosen: list[str] | None = None
            for op, value in equal:
                given = [text_of(v) for v in (value if op == "in" else (value,))]
                chosen = given if chosen is None else [v for v in chosen if v in given]
            return [ProjectedValue(v, v) for v in dict.fromkeys(chosen or [])]
        if self.kind == "enum":
            return [ProjectedValue(v, v) for v in self.enum_values if keeps(v)]
        if self.kind == "integer":
            return self._integers(keeps)
        return self._dates(keeps, now)

    def exact_count(self, constraints: list[Constraint], now: datetime) -> int | None:
        """How many values the key has when no constraint narrows it (arithmetic, nothing is
        enumerated), else None; ProjectionError when that is more than MAX_VALUES."""
        if self.kind == "injected" or Filter(self.athena_type, constraints).checks:
            return None
        if self.kind == "enum":
            return len(self.enum_values)
        if self.kind == "integer":
            count = (self.high - self.low) // self.interval + 1
        else:
            low, high = self._dates_span(now)
            count = steps_between(low, high, self.interval, self.unit)
        if count > MAX_VALUES:
            raise _too_many(self.name)
        return count

    def _integers(self, keeps: Filter) -> list[ProjectedValue]:
        low, high = self.low, self.high
        equal = keeps.equal_values() if self.athena_type in (*INTEGER_TYPES, "string") else None
        if equal is not None:  # only these can match: no need to walk the range
            numbers: set[int] = set()
            for value in equal:
                try:
                    number = int(str(value).strip())
                except ValueError:
                    continue
                if low <= number <= high and (number - low) % self.interval == 0:
                    numbers.add(number)
            candidates: Any = sorted(numbers)
        else:
            if self.athena_type in INTEGER_TYPES:
                lower, upper = keeps.bounds()
                if lower is not None and lower > low:
                    low = low + -(-(lower - low) // self.interval) * self.interval
                if upper is not None:
                    high = min(high, upper)
            if (high - low) // self.interval + 1 > MAX_VALUES:
                raise _too_many(self.name)
            candidates = range(low, high + 1, self.interval)
        out = []
        for number in candidates:
            text = f"{number:0{self.digits}d}" if self.digits else str(number)
            if keeps(text):
                out.append(ProjectedValue(text, str(number)))
        return out

    def _dates_span(self, now: datetime) -> tuple[datetime, datetime]:
        low, high = (self._bound(text, now) for text in self.date_range)
        return low, high

    def _dates(self, keeps: Filter, now: datetime) -> list[ProjectedValue]:
        if self.pattern is None:
            raise ProjectionError(f"partition projection of column {self.name}: no date format")
        low, high = self._dates_span(now)
        count = steps_between(low, high, self.interval, self.unit)
        if count > MAX_VALUES:
            raise _too_many(self.name)
        out: list[ProjectedValue] = []
        for step in range(count):
            try:
                moment = add_units(low, step * self.interval, self.unit)
            except OverflowError:
                return out  # past year 9999: the values there are are all of them
            if moment > high:
                return out
            text = self.pattern.format(moment)
            if self.athena_type == "date":
                column = moment.date().isoformat()
            elif self.athena_type == "timestamp":
                column = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
            else:
                column = text
            if keeps(column):
                out.append(ProjectedValue(text, column))
        return out

    def _bound(self, text: str, now: datetime) -> datetime:
        if self.pattern is None:
            raise ProjectionError(f"partition projection of column {self.name}: no date format")
        relative = _NOW.match(text)
        if relative:
            moment = now.astimezone(UTC)
            if relative.group(1):
                digits = relative.group(2).lstrip("0")[:20]  # more than 19 digits is past any date
                count = int(digits or "0") * (1 if relative.group(1) == "+" else -1)
                try:
                    moment = add_units(moment, count, relative.group(3).upper() + "S")
                except OverflowError:
                    msg = f"{text.strip()!r} is outside the dates tidelake reads (years 1-9999)"
                    raise _bad(self.name, "range", msg) from None
        else:
            found = self.pattern.read(text)
            if found is None:
                msg = (
                    f"{text!r} is neither a date formatted as {self.pattern.pattern!r} nor "
                    "NOW[+|-<n><unit>] (units YEARS, MONTHS, WEEKS, DAYS, HOURS, MINUTES, SECONDS)"
                )
                raise _bad(self.name, "range", msg)
            moment = found
        truncated = self.pattern.read(self.pattern.format(moment))
        return truncated or moment


@dataclass(frozen=True)
class ProjectedPartition:
    """One computed partition: `path_values` for its folder, `column_values` for its typed columns."""

    path_values: list[str]
    column_values: list[str]


@dataclass(frozen=True)
class Projection:
    """A table's projection: its keys in partition order and its location template."""

    keys: list[KeyProjection]
    template: str | None = None

    def partitions(self, constraints: dict[str, list[Constraint]], now: datetime) -> list[ProjectedPartition]:
        """Every partition whose values satisfy `constraints` (key name, lower case -> constraints).
        Keys no constraint narrows are counted, not enumerated, before the limits are checked."""
        try:
            return self._partitions(constraints, now)
        except (ValueError, ArithmeticError) as exc:  # a value no check foresaw: this table's error
            raise ProjectionError(
                f"partition projection cannot enumerate this table's partitions: {exc}"
            ) from exc

    def _partitions(
        self, constraints: dict[str, list[Constraint]], now: datetime
    ) -> list[ProjectedPartition]:
        given = [constraints.get(key.name.lower(), []) for key in self.keys]
        counts = [key.exact_count(c, now) for key, c in zip(self.keys, given, strict=True)]
        per_key: dict[int, list[ProjectedValue]] = {}
        for index, key in enumerate(self.keys):  # the narrowed keys first: they may hold nothing
            if counts[index] is None:
                per_key[index] = key.values(given[index], now)
                if not per_key[index]:
                    return []
        total = 1
        for index, count in enumerate(counts):
            total *= len(per_key[index]) if count is None else count
        if total > MAX_PARTITIONS:
            names = ", ".join(k.name for k in self.keys)
            msg = (
                f"the query projects {total:,} partitions, more than tidelake reads in one query "
                f"({MAX_PARTITIONS:,}); filter the partition keys ({names}) in the WHERE clause"
            )
            raise ProjectionError(msg)
        if total == 0:
            return []
        for index, key in enumerate(self.keys):
            if index not in per_key:
                per_key[index] = key.values(given[index], now)
        return [
            ProjectedPartition([v.path for v in combo], [v.column for v in combo])
            for combo in product(*(per_key[i] for i in range(len(self.keys))))
        ]

    def location(self, table_location: str, partition: ProjectedPartition) -> str:
        """The partition's `s3://` location: the template with each `${key}` replaced, else Hive style."""
        if self.template is not None:
            out = self.template
            for key, value in zip(self.keys, partition.path_values, strict=True):
                out = out.replace("${" + key.name + "}", value)
            return out
        base = table_location if table_location.endswith("/") else table_location + "/"
        parts = [
            f"{hive_escape(k.name)}={hive_escape(v)}"
            for k, v in zip(self.keys, partition.path_values, strict=True)
        ]
        return base + "/".join(parts) + "/"


def hive_escape(text: str) -> str:
    """A partition name or value as Hive spells it in a folder name (`FileUtils.escapePathName`)."""
    return "".join(f"%{ord(c):02X}" if c in _HIVE_UNSAFE or ord(c) < 0x20 else c for c in text)


def parse_projection(parameters: dict[str, str], keys: list[tuple[str, str]]) -> Projection | None:
    """The table's Projection from its Glue `Parameters` and partition keys (name, Athena type);
    None unless `projection.enabled` is true. ProjectionError for a configuration Athena refuses."""
    props = {k.strip().lower(): v for k, v in parameters.items()}
    if props.get("projection.enabled", "").strip().lower() != "true":
        return None
    if not keys:
        raise ProjectionError("partition projection is enabled on a table without PARTITIONED BY keys")
    try:
        projected = [_key(name, kind.strip().lower(), props) for name, kind in keys]
    except (ValueError, ArithmeticError) as exc:  # a value no check foresaw: this table's error
        raise ProjectionError(f"partition projection cannot read this table's properties: {exc}") from exc
    template = parameters.get("storage.location.template")
    if template is not None:
        for name, _ in keys:
            if "${" + name + "}" not in template:
                msg = f"storage.location.template {template!r} has no ${{{name}}} placeholder for partition key {name}"
                raise ProjectionError(msg)
    return Projection(projected, template)


def _key(name: str, athena_type: str, props: dict[str, str]) -> KeyProjection:
    prefix = f"projection.{name.lower()}."
    kind = props.get(prefix + "type", "").strip().lower()
    if not kind:
        raise _bad(name, "type", "is missing: every partition key of a projected table needs one")
    if kind == "enum":
        values = props.get(prefix + "values")
        if values is None:
            raise _bad(name, "values", "is required for an enum projection")
        return KeyProjection(name, athena_type, kind, enum_values=tuple(values.split(",")))
    if kind == "injected":
        return KeyProjection(name, athena_type, kind)
    interval = _positive(name, props, prefix + "interval", "interval") or 1
    if kind == "integer":
        bounds = _pair(name, props, prefix + "range")
        try:
            low, high = (_long(b) for b in bounds)
        except ValueError:
            raise _bad(name, "range", f"{props[prefix + 'range']!r} is not two integers, min,max") from None
        if not (_JAVA_LONG[0] <= low <= high <= _JAVA_LONG[1]):
            raise _bad(name, "range", f"{low},{high} is not min <= max within a Java long")
        digits = _positive(name, props, prefix + "digits", "digits")
        return KeyProjection(name, athena_type, kind, low=low, high=high, interval=interval, digits=digits)
    if kind == "date":
        if prefix + "format" not in props:
            raise _bad(name, "format", "is required for a date projection")
        try:
            pattern = DatePattern.parse(props[prefix + "format"])
        except ValueError as exc:
            raise _bad(name, "format", str(exc)) from None
        unit_text = props.get(prefix + "interval.unit", "").strip().upper()
        if unit_text and unit_text not in _UNITS:
            raise _bad(name, "interval.unit", f"{unit_text!r} is not one of {', '.join(_UNITS)}")
        letters = pattern.letters()
        if not unit_text and letters & set("HmsS"):
            raise _bad(name, "interval.unit", "is required when the format is finer than a day")
        unit = unit_text or ("DAYS" if "d" in letters else "MONTHS" if "M" in letters else "YEARS")
        first, last = _pair(name, props, prefix + "range")
        key = KeyProjection(
            name, athena_type, kind, interval=interval, pattern=pattern, date_range=(first, last), unit=unit
        )
        now = datetime(2000, 1, 1, tzinfo=UTC)
        key._bound(first, now), key._bound(last, now)  # a bad date fails at once, whatever "now" is
        return key
    raise _bad(name, "type", f"{kind!r} is not enum, integer, date or injected")


def _pair(name: str, props: dict[str, str], prop: str) -> tuple[str, str]:
    text = props.get(prop)
    if text is None:
        raise _bad(name, prop.rsplit(".", 1)[-1], "is required")
    parts = text.split(",")
    if len(parts) != 2:
        raise _bad(name, "range", f"{text!r} is not a list of 2 values, min,max")
    return parts[0], parts[1]


def _positive(name: str, props: dict[str, str], prop: str, label: str) -> int | None:
    text = props.get(prop)
    if text is None:
        return None
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_DIGITS or int(digits) < 1:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _bad(name, label, f"{shown!r} is not a positive integer of at most {_MAX_DIGITS} digits")
    if label == "digits" and int(digits) > _MAX_DIGITS:
        raise _bad(name, label, f"{digits} is more than {_MAX_DIGITS} (a Java long has {_MAX_DIGITS} digits)")
    return int(digits)


def _long(text: str) -> int:
    """An integer range bound: ASCII digits with an optional sign; ValueError otherwise."""
    digits = text.strip()
    unsigned = digits[1:] if digits[:1] in ("+", "-") else digits
    if not (unsigned.isascii() and unsigned.isdigit()) or len(unsigned) > 40:
        raise ValueError(text)
    return int(digits)


def _bad(column: str, prop: str, detail: str) -> ProjectionError:
    return ProjectionError(f"partition projection of column {column}: projection.{column}.{prop} {detail}")


def _too_many(column: str) -> ProjectionError:
    msg = (
        f"partition projection of column {column} enumerates more than {MAX_VALUES:,} values "
        "(tidelake's limit); narrow its range or interval, or filter it in the WHERE clause"
    )
    return ProjectionError(msg)
