"""What a query's WHERE says about a projected table's partition keys, read before any file is opened.

    uses = projection_filters(sql, {("logs", "events")}, database="logs")
    # {("logs", "events"): [{"dt": [(">=", "2024/01/02")], "hour": [("in", (1, 2))]}]}

One entry per place the statement reads the table (a self-join reads it twice), each mapping a
column (lower case) to the constraints of the top-level AND terms of that SELECT's WHERE: `col op
literal` (`=`, `<>`/`!=`, `<`, `<=`, `>`, `>=`, either side), `col IN (literals)` and `col BETWEEN a
AND b`. Literals are strings, numbers, `DATE '...'`/`TIMESTAMP '...'` (as date/datetime) and
`?` placeholders with the statement's positional values. A column counts when it is qualified by the
table's alias or name, or unqualified in a SELECT that reads only this table. Anything else (OR,
functions, subqueries) narrows nothing, which is always safe: DuckDB still applies the whole WHERE
to the rows read. The statement is parsed by sqlglot (DuckDB dialect); it is never rewritten.

ProjectionParseError when sqlglot cannot read the statement.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlglot
from sqlglot import exp

from queries.projection_compare import Constraint

_OPS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NO_VALUE = object()

Uses = dict[tuple[str, str], list[dict[str, list[Constraint]]]]


class ProjectionParseError(ValueError):
    """sqlglot could not read the statement, so its filters on projected keys are unknown."""


def projection_filters(
    sql: str, tables: set[tuple[str, str]], database: str = "default", params: list[Any] | None = None
) -> Uses:
    """For each table of `tables` ((database, name), lower case) the statement reads: one dict of
    column -> constraints per place it is read. A bare name is in `database` (`main` is `default`)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise ProjectionParseError(str(exc)) from exc
    if tree is None:
        return {}
    values = list(params or [])
    placeholders = {id(p): i for i, p in enumerate(tree.find_all(exp.Placeholder))}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    uses: Uses = {}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if not name:
            continue
        db = (table.db or "").lower()
        if not db and name in ctes:
            continue
        key = (_database(db or database), name)
        if key not in tables:
            continue
        uses.setdefault(key, []).append(_constraints(table, placeholders, values))
    return uses


def _database(name: str) -> str:
    return "default" if name in ("main", "default", "") else name


def _constraints(
    table: exp.Table, placeholders: dict[int, int], values: list[Any]
) -> dict[str, list[Constraint]]:
    select = table.find_ancestor(exp.Select)
    if select is None:
        return {}
    where = select.args.get("where")
    if where is None:
        return {}
    alias = table.alias_or_name.lower()
    joins = select.args.get("joins") or []
    alone = (select.args.get("from_") or select.args.get("from")) is not None and not joins

    def ours(node: exp.Expression) -> str | None:
        if not isinstance(node, exp.Column):
            return None
        qualifier = node.table.lower()
        if qualifier == alias or (not qualifier and alone):
            return node.name.lower()
        return None

    def literal(node: exp.Expression) -> Any:
        if isinstance(node, exp.Paren):
            return literal(node.this)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node.this
            text = node.this
            try:
                return int(text)
            except ValueError:
                try:
                    return float(text)
                except ValueError:
                    return _NO_VALUE
        if isinstance(node, exp.Neg):
            inner = literal(node.this)
            return -inner if isinstance(inner, int | float) else _NO_VALUE
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
            target = node.to.this
            try:
                if target == exp.DataType.Type.DATE:
                    return date.fromisoformat(node.this.this.strip())
                if target in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ):
                    return datetime.fromisoformat(node.this.this.strip())
            except ValueError:
                return _NO_VALUE
            if target in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT):
                return node.this.this
            return _NO_VALUE
        if isinstance(node, exp.Placeholder) and id(node) in placeholders:
            index = placeholders[id(node)]
            if index < len(values) and isinstance(values[index], str | int | float | date):
                return values[index]
        return _NO_VALUE

    found: dict[str, list[Constraint]] = {}
    for term in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        for column, constraint in _read_term(term, ours, literal):  # type: ignore[arg-type]
            found.setdefault(column, []).append(constraint)
    return found


def _read_term(term: exp.Expression, ours: Any, literal: Any) -> list[tuple[str, Constraint]]:
    while isinstance(term, exp.Paren):
        term = term.this
    op = _OPS.get(type(term))
    if op is not None:
        left, right = term.this, term.expression
        for column_side, value_side, operator in ((left, right, op), (right, left, _FLIP[op])):
            column = ours(column_side)
            value = literal(value_side)
            if column is not None and value is not _NO_VALUE:
                return [(column, (operator, value))]
        return []
    if isinstance(term, exp.In) and not term.args.get("query"):
        column = ours(term.this)
        items = [literal(e) for e in term.expressions]
        if column is not None and items and all(v is not _NO_VALUE for v in items):
            return [(column, ("in", tuple(items)))]
        return []
    if isinstance(term, exp.Between):
        column = ours(term.this)
        low, high = literal(term.args["low"]), literal(term.args["high"])
        out: list[tuple[str, Constraint]] = []
        if column is not None and low is not _NO_VALUE:
            out.append((column, (">=", low)))
        if column is not None and high is not _NO_VALUE:
            out.append((column, ("<=", high)))
        return out
    return []
