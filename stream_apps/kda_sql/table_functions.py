"""KDA's tumbling table functions over `CURSOR(SELECT STREAM ... FROM stream)` (AWS, KDA SQL
Reference, "TOP_K_ITEMS_TUMBLING Function", "COUNT_DISTINCT_ITEMS_TUMBLING Function"):

    SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM "S"), 'col', K, seconds))
    SELECT STREAM * FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM "S"), 'col', seconds))

Both run on a tumbling window of `seconds` (1 to 3600) over event time. TOP_K gives one row per item,
most frequent first: the column (named as `'col'`) and `MOST_FREQUENT_VALUES`, its count; ties by
value. COUNT_DISTINCT gives one row per window: `NUMBER_OF_DISTINCT_ITEMS`. Both are exact here
where AWS approximated (AWS: top-K "may return three of the five most traded"; HyperLogLog above
10,000 items). The cursor may filter with WHERE; the outer SELECT may pick and compute from the
output columns and filter them with WHERE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from stream_apps.kda_sql.dialect import node_offset, sql_of, table_call
from stream_apps.kda_sql.expressions import ExpressionCompiler, name_of
from stream_apps.kda_sql.plans import AggregateCall, PumpPlan
from stream_apps.kda_sql.refusals import SourceText
from stream_apps.kda_sql.statements import PumpStatement

TOP_K = "TOP_K_ITEMS_TUMBLING"
COUNT_DISTINCT = "COUNT_DISTINCT_ITEMS_TUMBLING"
MOST_FREQUENT_VALUES = "MOST_FREQUENT_VALUES"
NUMBER_OF_DISTINCT_ITEMS = "NUMBER_OF_DISTINCT_ITEMS"


@dataclass(frozen=True)
class TableFunction:
    """Which function, over which column: its output columns and how a window's result becomes rows."""

    name: str
    column: str

    @property
    def columns(self) -> dict[str, str | None]:
        """Output column -> category (None: the item column's, not known before data)."""
        if self.name == TOP_K:
            return {self.column: None, MOST_FREQUENT_VALUES: "integer"}
        return {NUMBER_OF_DISTINCT_ITEMS: "integer"}

    def rows(self, env: dict[str, Any], results: list[Any]) -> list[dict[str, Any]]:
        if self.name == COUNT_DISTINCT:
            return [dict(env, **{NUMBER_OF_DISTINCT_ITEMS: results[0]})]
        return [
            dict(env, **{self.column: item["__a0"], MOST_FREQUENT_VALUES: item["count"]})
            for item in results[0]
        ]


def _whole(node: exp.Expr | None, low: int, high: int) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit():
        value = int(node.this)
        return value if low <= value <= high else None
    return None


def compile_table_function(source: SourceText, pump: PumpStatement, select: exp.Select, table: exp.Table,
                           resolve: Callable[[str, exp.Column], str]) -> PumpPlan | None:  # fmt: skip
    """The plan of `SELECT ... FROM TABLE(fn(CURSOR(...), ...))`, or None when fn is not one of these."""
    base = pump.select_offset
    name, call = table_call(table)
    if call is None or name not in (TOP_K, COUNT_DISTINCT):
        return None
    args = list(call.expressions)
    usage = f"write {name}(CURSOR(SELECT STREAM * FROM \"S\"), 'column', {'K, ' if name == TOP_K else ''}window_seconds)"
    cursor = args[0] if args else None
    inner = cursor.expressions[0] if isinstance(cursor, exp.Anonymous) and cursor.expressions else None
    if (
        len(args) != (4 if name == TOP_K else 3)
        or str(getattr(cursor, "this", "")).upper() != "CURSOR"
        or not isinstance(inner, exp.Select)
    ):
        raise source.refuse(base + node_offset(table), f"{name} takes a CURSOR, a column name in quotes{', K' if name == TOP_K else ''} and a window in seconds", usage)  # fmt: skip
    column, seconds = args[1], _whole(args[-1], 1, 3600)
    k = _whole(args[2], 1, 100_000) if name == TOP_K else 0
    if not (isinstance(column, exp.Literal) and column.is_string) or seconds is None or k is None:
        raise source.refuse(base + node_offset(call), f"{name}: the column is text in single quotes, K is 1 to 100000, the window 1 to 3600 seconds", usage)  # fmt: skip
    inner_from = inner.args.get("from_") or inner.args.get("from")
    inner_table = inner_from.this if inner_from is not None else None
    if (
        not isinstance(inner_table, exp.Table)
        or not isinstance(inner_table.this, exp.Identifier)
        or inner.args.get("group") is not None
    ):
        raise source.refuse(base + node_offset(inner), "the CURSOR reads one stream by name, without GROUP BY", usage)  # fmt: skip
    function = TableFunction(name, str(column.this))
    rows = ExpressionCompiler(source, base, resolve)
    plan = PumpPlan(pump, name_of(inner_table.this), ("tumbling", seconds * 1_000_000))
    if inner.args.get("where") is not None:
        plan.where = rows.condition(inner.args["where"].this)
    arg = rows.compile(exp.column(function.column, quoted=True))
    kind = "top" if name == TOP_K else "count_distinct"
    plan.aggregates = [AggregateCall(kind, f"{name}('{function.column}')", arg, k or 0)]
    plan.table_function = function

    def output(column_name: str, node: exp.Column) -> str:
        if column_name not in function.columns:
            raise source.refuse(base + node_offset(node), f"{name} has no column {column_name}", f"its columns are {', '.join(function.columns)}")  # fmt: skip
        return column_name

    outer = ExpressionCompiler(source, base, output)
    items: list[exp.Expr] = []
    for item in select.expressions:
        if isinstance(item, exp.Star):
            items += [exp.column(c, quoted=True) for c in function.columns]
        else:
            items.append(item)
    plan.select = [
        (name_of(i.this) if isinstance(i, exp.Column) else sql_of(i), outer.compile(i), i) for i in items
    ]
    if select.args.get("where") is not None:
        plan.having = outer.condition(select.args["where"].this)
    return plan
