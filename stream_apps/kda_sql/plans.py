"""What a pump compiles to: its window, key, aggregates and the functions that shape its rows.
pumps.py and table_functions.py build these; program.py chains them; the engine runs them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from stream_apps.kda_sql.functions import EPOCH
from stream_apps.kda_sql.statements import PumpStatement

Fn = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class AggregateCall:
    """One aggregate of a grouped pump: the engine aggregate (`kind`) over argument `arg`."""

    kind: str  # the engine's: count, sum, min, max, avg, count_distinct, top
    sql: str
    arg: Fn | None  # None for COUNT(*)
    n: int = 0  # top: how many items


@dataclass
class PumpPlan:
    """A compiled pump. `window` is None for a per-row pump, else ("tumbling"|"stagger", size_us)."""

    statement: PumpStatement
    from_stream: str
    window: tuple[str, int] | None
    keys: list[tuple[str, Fn]] = field(default_factory=list)
    aggregates: list[AggregateCall] = field(default_factory=list)
    where: Callable[[dict[str, Any]], bool] | None = None
    having: Callable[[dict[str, Any]], bool] | None = None
    select: list[tuple[str, Fn, exp.Expr]] = field(default_factory=list)
    #: A sliding window of `ROWS n PRECEDING` (n); None for RANGE INTERVAL ... PRECEDING.
    rows_preceding: int | None = None
    #: TOP_K_ITEMS_TUMBLING / COUNT_DISTINCT_ITEMS_TUMBLING (windowed) or RANDOM_CUT_FOREST[_WITH_
    #: EXPLANATION] (per row): its output columns and rows.
    table_function: Any = None
    #: Unquoted (upper-case) source columns: without an input schema they also read the JSON field
    #: of the same name in lower case, as KDA's schema discovery named `$.page` column PAGE.
    folded_source_names: tuple[str, ...] = ()

    def group_values(self, row: dict[str, Any]) -> tuple[tuple[Any, ...], list[Any]]:
        """(key tuple, aggregate arguments) of one input row."""
        key = tuple(fn(row) for _, fn in self.keys)
        return key, [None if a.arg is None else a.arg(row) for a in self.aggregates]

    def grouped_rows(self, key: tuple[Any, ...], start_us: int, end_us: int, results: list[Any],
                     own: dict[str, Any] | None = None) -> list[list[Any]]:  # fmt: skip
        """The SELECT values of one closed window (of a sliding window, `own` is the row's own
        columns): one row, none when HAVING is not TRUE, one per item for TOP_K_ITEMS_TUMBLING."""
        env: dict[str, Any] = dict(own) if own else {}
        env.update((f"__g{i}", v) for i, v in enumerate(key))
        env.update((f"__a{i}", v) for i, v in enumerate(results))
        env["__ws"] = EPOCH + dt.timedelta(microseconds=start_us)
        env["__we"] = EPOCH + dt.timedelta(microseconds=end_us)
        envs = [env]
        if self.table_function is not None:
            envs = self.table_function.rows(env, results)
        return [[fn(e) for _, fn, _ in self.select] for e in envs if self.having is None or self.having(e)]

    def row(self, env: dict[str, Any], forests: Any = None) -> list[Any] | None:
        """The SELECT values of one row of a per-row pump, or None when WHERE is not TRUE. A
        RANDOM_CUT_FOREST pump scores the cursor row with its forest in `forests` (engine state)
        after the cursor's WHERE, then applies the outer WHERE (`having`)."""
        if self.where is not None and not self.where(env):
            return None
        if self.table_function is not None:
            env = self.table_function.scored(env, forests.forests[self.statement.name])
            if self.having is not None and not self.having(env):
                return None
        return [fn(env) for _, fn, _ in self.select]
