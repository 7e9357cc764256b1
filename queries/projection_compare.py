"""How a projected key's values are compared with a query's constraints, in the key's declared type.

    keeps = Filter("int", [(">=", 3), ("in", (3, 5, 9))])
    keeps("5"), keeps("4")  # True, False
    keeps.bounds(), keeps.equal_values()  # (3, None), {3, 5, 9}

A constraint is (operator, literal): `=`, `!=`, `<`, `<=`, `>`, `>=`, or `in` with a tuple. A literal
that cannot be converted to the key's type (string, integer types, date, timestamp) is ignored: it
only narrows, and DuckDB still applies the whole WHERE to the rows read. A value that cannot be
converted is kept for the same reason.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

Constraint = tuple[str, Any]  # ("=", v) | ("!=", v) | ("<", v) ... | ("in", (v, ...))
INTEGER_TYPES = ("tinyint", "smallint", "int", "integer", "bigint")


def text_of(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


class Filter:
    """Whether a key's value (its column text) satisfies constraints, compared in `athena_type`."""

    def __init__(self, athena_type: str, constraints: list[Constraint]) -> None:
        self.convert = _converter(athena_type)
        self.checks: list[tuple[str, Any]] = []
        for op, value in constraints:
            try:
                typed = tuple(self.convert(v) for v in value) if op == "in" else self.convert(value)
            except (ValueError, TypeError):
                continue  # a literal not comparable in this type narrows nothing
            self.checks.append((op, typed))

    def equal_values(self) -> set[Any] | None:
        """The values `=` and `IN` constraints allow (their intersection), None when there are none."""
        allowed: set[Any] | None = None
        for op, value in self.checks:
            if op in ("=", "in"):
                given = set(value) if op == "in" else {value}
                allowed = given if allowed is None else allowed & given
        return allowed

    def bounds(self) -> tuple[Any, Any]:
        """(largest lower bound, smallest upper bound) the constraints set, None where none."""
        lower = upper = None
        for op, value in self.checks:
            if op in ("=", ">", ">="):
                candidate = value + 1 if op == ">" and isinstance(value, int) else value
                lower = candidate if lower is None else max(lower, candidate)
            if op in ("=", "<", "<="):
                candidate = value - 1 if op == "<" and isinstance(value, int) else value
                upper = candidate if upper is None else min(upper, candidate)
        return lower, upper

    def __call__(self, text: str) -> bool:
        if not self.checks:
            return True
        try:
            value = self.convert(text)
        except (ValueError, TypeError):
            return True
        for op, bound in self.checks:
            if op == "in":
                ok = value in bound
            else:
                ok = {
                    "=": value == bound,
                    "!=": value != bound,
                    "<": value < bound,
                    "<=": value <= bound,
                    ">": value > bound,
                    ">=": value >= bound,
                }[op]
            if not ok:
                return False
        return True


def _converter(athena_type: str) -> Any:
    if athena_type in INTEGER_TYPES:
        return lambda v: v if isinstance(v, int) and not isinstance(v, bool) else int(str(v).strip())
    if athena_type == "date":
        return lambda v: (
            v.date() if isinstance(v, datetime) else v if isinstance(v, date) else date.fromisoformat(str(v))
        )
    if athena_type == "timestamp":
        return lambda v: (
            v.replace(tzinfo=None)
            if isinstance(v, datetime)
            else datetime(v.year, v.month, v.day)
            if isinstance(v, date)
            else datetime.fromisoformat(str(v))
        )

    def text(v: Any) -> str:
        if not isinstance(v, str):
            raise TypeError(v)  # DuckDB would cast; tidelake does not guess, so no narrowing
        return v

    return text
