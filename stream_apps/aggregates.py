"""Aggregates over the events of one window, as Kinesis Data Analytics SQL wrote them in SELECT.

Each aggregate is a small accumulator: `new()`, `add(acc, value, t_us)` (returns the new acc),
`merge(a, b)` for windows that merge (sessions) and `result(acc)` for the output row. Values that
are missing (None) are skipped as SQL skips NULL; `count` counts events (COUNT(*)).

`sum`, `avg`, `min` and `max` read text that holds a number (CSV fields arrive as text) as that
number; `sum` and `avg` skip other text, as SQL's TRY_CAST would.

Spelling in specs and `--agg`: `count`, `count_distinct:F`, `sum:F`, `min:F`, `max:F`, `avg:F`,
`top:N:F` (the N most frequent values of F with their counts, like HOTSPOTS for a categorical
field), `first:F` / `last:F` (value at the earliest / latest event time), `duration` (seconds from
the first to the last event). Output fields: `count`, `count_distinct_F`, `sum_F`, `min_F`, `max_F`,
`avg_F`, `top_N`, `first_F`, `last_F`, `duration_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

_NO_FIELD = ("count", "duration")
_WITH_FIELD = ("count_distinct", "sum", "min", "max", "avg", "first", "last")
KINDS = (*_NO_FIELD, *_WITH_FIELD, "top")
#: Aggregates that read text holding a number (a CSV field) as that number.
_NUMERIC = ("sum", "avg", "min", "max")


@dataclass(frozen=True)
class Aggregate:
    """One aggregate of a spec: what it computes (`kind`), over which field, and its output name."""

    kind: str
    field: str | None = None
    n: int = 0

    @property
    def output_name(self) -> str:
        if self.kind == "count":
            return "count"
        if self.kind == "duration":
            return "duration_s"
        if self.kind == "top":
            return f"top_{self.n}"
        return f"{self.kind}_{self.field}"

    @property
    def spelling(self) -> str:
        if self.field is None:
            return self.kind
        if self.kind == "top":
            return f"top:{self.n}:{self.field}"
        return f"{self.kind}:{self.field}"

    # -- accumulator -------------------------------------------------------------------------
    def new(self) -> Any:
        kind = self.kind
        if kind == "count":
            return 0
        if kind == "count_distinct":
            return set()
        if kind == "top":
            return {}
        return None

    def add(self, acc: Any, value: Any, t_us: int) -> Any:
        kind = self.kind
        if kind == "count":
            return acc + 1
        if kind == "duration":
            return (t_us, t_us) if acc is None else (min(acc[0], t_us), max(acc[1], t_us))
        if value is None:
            return acc
        if value.__class__ is str and kind in _NUMERIC:
            value = _number(value, keep_text=kind in ("min", "max"))
            if value is None:
                return acc
        if kind == "count_distinct":
            acc.add(value)
            return acc
        if kind == "sum":
            return value if acc is None else acc + value
        if kind == "min":
            try:
                return value if acc is None or value < acc else acc
            except TypeError:  # a text value among numbers (or the reverse): skipped like a bad cast
                return acc
        if kind == "max":
            try:
                return value if acc is None or value > acc else acc
            except TypeError:
                return acc
        if kind == "avg":
            return (value, 1) if acc is None else (acc[0] + value, acc[1] + 1)
        if kind == "top":
            acc[value] = acc.get(value, 0) + 1
            return acc
        if kind == "first":
            return (t_us, value) if acc is None or (t_us, value) < acc else acc
        # last
        return (t_us, value) if acc is None or (t_us, value) > acc else acc

    def merge(self, a: Any, b: Any) -> Any:
        kind = self.kind
        if kind == "count":
            return a + b
        if kind == "count_distinct":
            return a | b
        if kind == "top":
            merged = dict(a)
            for value, count in b.items():
                merged[value] = merged.get(value, 0) + count
            return merged
        if a is None:
            return b
        if b is None:
            return a
        if kind == "sum":
            return a + b
        if kind in ("min", "first"):
            return min(a, b)
        if kind in ("max", "last"):
            return max(a, b)
        if kind == "avg":
            return (a[0] + b[0], a[1] + b[1])
        # duration
        return (min(a[0], b[0]), max(a[1], b[1]))

    def result(self, acc: Any) -> Any:
        kind = self.kind
        if kind == "count_distinct":
            return len(acc)
        if kind == "avg":
            return None if acc is None else acc[0] / acc[1]
        if kind == "top":
            ranked = sorted(acc.items(), key=lambda item: (-item[1], item[0]))
            # objects, not [value, count] pairs: a list of one type becomes a Parquet list<struct>
            return [{self.field: value, "count": count} for value, count in ranked[: self.n]]
        if kind in ("first", "last"):
            return None if acc is None else acc[1]
        if kind == "duration":
            return None if acc is None else (acc[1] - acc[0]) / 1_000_000
        return acc


def _number(text: str, keep_text: bool) -> Any:
    """Numbers that arrive as text (CSV fields) count as numbers, like SQL's TRY_CAST."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text if keep_text else None


def parse_aggregate(text: str) -> Aggregate:
    """`"sum:bytes"` -> Aggregate("sum", "bytes"); ConfigError with the accepted spellings otherwise."""
    parts = [p.strip() for p in str(text).split(":")]
    kind = parts[0]
    hint = "use count, duration, count_distinct:F, sum:F, min:F, max:F, avg:F, first:F, last:F or top:N:F"
    if kind in _NO_FIELD and len(parts) == 1:
        return Aggregate(kind)
    if kind in _WITH_FIELD and len(parts) == 2 and parts[1]:
        return Aggregate(kind, parts[1])
    if kind == "top" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) > 0 and parts[2]:
        return Aggregate("top", parts[2], int(parts[1]))
    msg = f"aggregate {text!r} is not understood; {hint}"
    raise ConfigError(msg)
