"""Scalar expressions of KDA SQL compiled to Python functions of one row (a dict).

`ExpressionCompiler.compile(node)` turns a sqlglot node into `f(row) -> value`; nodes that a
grouped SELECT has already computed (GROUP BY items, aggregates) are looked up in `substitutions`
(by structure, as sqlglot compares trees) instead. SQL's NULL is None and propagates through arithmetic and comparisons;
AND/OR/NOT use three-valued logic; WHERE and HAVING keep a row only when the condition is TRUE.

Functions, as the KDA SQL reference defines them (AWS, "Amazon Kinesis Data Analytics SQL
Reference": Operators, Date and Time Functions, String Functions, Conversion Functions):
`CAST`, `CASE`, `IN`, `BETWEEN`, `LIKE`, `IS [NOT] NULL`, `||`, `FLOOR(x TO unit)`,
`STEP(x BY INTERVAL ...)`, `CHAR_TO_TIMESTAMP(fmt, s)`, `TIMESTAMP_TO_CHAR(fmt, ts)`,
`TSDIFF(a, b)` (milliseconds a - b), `UNIX_TIMESTAMP(ts)` (milliseconds since 1970-01-01),
`EXTRACT(unit FROM ts)`, `SUBSTRING(s FROM i [FOR n])` (1-based), `UPPER`, `LOWER`,
`TRIM([BOTH|LEADING|TRAILING] [c] FROM s)`, `POSITION(a IN b)` (1-based, 0 when absent).
A value that cannot be cast raises RowError: the record goes to the DLQ with that reason.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from stream_apps.kda_sql.columns import SqlType, format_timestamp
from stream_apps.kda_sql.dialect import Step, node_offset, sql_of
from stream_apps.kda_sql.functions import (
    EPOCH,
    INTERVAL_UNITS,
    RowError,
    and3,
    arith,
    as_timestamp,
    compare,
    divide,
    floor_time,
    in_list,
    java_format,
    like_pattern,
    or3,
    parse_with_format,
    substring,
)
from stream_apps.kda_sql.refusals import SourceText

Fn = Callable[[dict[str, Any]], Any]
FLOOR_UNITS = ("SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "YEAR")
_COMPARE = {exp.EQ: operator.eq, exp.NEQ: operator.ne, exp.GT: operator.gt, exp.GTE: operator.ge,
            exp.LT: operator.lt, exp.LTE: operator.le}  # fmt: skip
_ARITH = {exp.Add: operator.add, exp.Sub: operator.sub, exp.Mul: operator.mul}
_TYPE_NAMES = {"VARCHAR": "VARCHAR", "CHAR": "CHAR", "TEXT": "VARCHAR", "INT": "INTEGER", "BIGINT": "BIGINT",
               "SMALLINT": "SMALLINT", "TINYINT": "TINYINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT",
               "DECIMAL": "DECIMAL", "BOOLEAN": "BOOLEAN", "TIMESTAMP": "TIMESTAMP", "TIMESTAMPTZ": "TIMESTAMP"}  # fmt: skip


def name_of(identifier: exp.Identifier | str) -> str:
    """A column's name under KDA's rule: quoted keeps its case, unquoted folds to upper case."""
    if isinstance(identifier, str):
        return identifier.upper()
    return identifier.this if identifier.quoted else identifier.this.upper()


def key_of(node: exp.Expr) -> str:
    """What identifies an expression in GROUP BY matching: its SQL text."""
    return node.sql("kdasql")


def interval_seconds(source: SourceText, base: int, node: exp.Expr) -> float:
    """`INTERVAL '5' MINUTE` -> 300.0; other spellings are refused."""
    if isinstance(node, exp.Interval) and isinstance(node.this, exp.Literal):
        unit = (node.unit.name if node.unit is not None else "").upper().rstrip("S")
        try:
            amount = float(node.this.this)
        except ValueError:
            amount = -1.0
        if unit in INTERVAL_UNITS and amount > 0:
            return amount * INTERVAL_UNITS[unit]
    raise source.refuse(
        base + node_offset(node), f"{sql_of(node)} is not an interval tidelake reads",
        "write INTERVAL 'n' SECOND|MINUTE|HOUR|DAY with n > 0",
    )  # fmt: skip


class ExpressionCompiler:
    """Compiles expressions of one SELECT; `resolve(name, node)` maps a column to its row key."""

    def __init__(self, source: SourceText, base: int, resolve: Callable[[str, exp.Column], str],
                 substitutions: dict[exp.Expr, str] | None = None) -> None:  # fmt: skip
        self.source, self.base = source, base
        self.resolve = resolve
        # keyed by the nodes themselves: sqlglot hashes a tree once, bottom-up, and caches each
        # node's hash, so a lookup per node is linear in the expression (its SQL text per node was
        # quadratic: 1000 terms of `+` took 16 s)
        self.substitutions = substitutions or {}

    def refuse(self, node: exp.Expr, what: str, instead: str) -> Exception:
        return self.source.refuse(self.base + node_offset(node), what, instead)

    def condition(self, node: exp.Expr) -> Callable[[dict[str, Any]], bool]:
        """A WHERE or HAVING condition: True only when the expression is TRUE (NULL is not)."""
        fn = self.compile(node)
        return lambda row: fn(row) is True

    def compile(self, node: exp.Expr) -> Fn:
        sub = self.substitutions.get(node) if self.substitutions else None
        if sub is not None:
            return lambda row: row[sub]
        c = self.compile
        if isinstance(node, exp.Paren | exp.Alias):
            return c(node.this)
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise self.refuse(node, "* is not supported in SELECT", "name the columns")
            key = self.resolve(name_of(node.this), node)
            return lambda row: row.get(key)
        if isinstance(node, exp.Literal):
            if node.is_string:
                text = node.this
                return lambda row: text
            number: int | float = float(node.this) if any(ch in node.this for ch in ".eE") else int(node.this)
            return lambda row: number
        if isinstance(node, exp.Boolean):
            flag = bool(node.this)
            return lambda row: flag
        if isinstance(node, exp.Null):
            return lambda row: None
        if isinstance(node, exp.Interval):
            delta = dt.timedelta(seconds=interval_seconds(self.source, self.base, node))
            return lambda row: delta
        for kind, op in _COMPARE.items():
            if isinstance(node, kind):
                a, b = c(node.this), c(node.expression)
                return lambda row, op=op: compare(op, a(row), b(row))  # type: ignore[misc]
        for kind, op in _ARITH.items():
            if isinstance(node, kind):
                a, b = c(node.this), c(node.expression)
                return lambda row, op=op: arith(op, a(row), b(row))  # type: ignore[misc]
        if isinstance(node, exp.Div):
            a, b = c(node.this), c(node.expression)
            return lambda row: arith(divide, a(row), b(row))
        if isinstance(node, exp.Mod):
            a, b = c(node.this), c(node.expression)
            return lambda row: arith(math.fmod, a(row), b(row))
        if isinstance(node, exp.Neg):
            a = c(node.this)
            return lambda row: None if (v := a(row)) is None else -v
        if isinstance(node, exp.DPipe):
            a, b = c(node.this), c(node.expression)
            return lambda row: None if (x := a(row)) is None or (y := b(row)) is None else f"{x}{y}"
        if isinstance(node, exp.And):
            a, b = c(node.this), c(node.expression)
            return lambda row: and3(a(row), b(row))
        if isinstance(node, exp.Or):
            a, b = c(node.this), c(node.expression)
            return lambda row: or3(a(row), b(row))
        if isinstance(node, exp.Not):
            a = c(node.this)
            return lambda row: None if (v := a(row)) is None else not v
        if isinstance(node, exp.Is):
            a = c(node.this)
            if not isinstance(node.expression, exp.Null):
                raise self.refuse(node, f"{sql_of(node)} is not supported", "write IS NULL or IS NOT NULL")
            if node.args.get("negate"):  # sqlglot may read `x IS NOT NULL` as Is(negate=True)
                return lambda row: a(row) is not None
            return lambda row: a(row) is None
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                raise self.refuse(node, "IN (SELECT ...) is not supported", "list the values: IN (1, 2)")
            a = c(node.this)
            items = [c(e) for e in node.expressions]
            return lambda row: in_list(a(row), [i(row) for i in items])
        if isinstance(node, exp.Between):
            a, low, high = c(node.this), c(node.args["low"]), c(node.args["high"])
            return lambda row: and3(
                compare(operator.ge, x := a(row), low(row)), compare(operator.le, x, high(row))
            )
        if isinstance(node, exp.Like):
            a = c(node.this)
            if not isinstance(node.expression, exp.Literal):
                raise self.refuse(node, "LIKE needs a literal pattern", "write LIKE 'prefix%'")
            pattern = like_pattern(node.expression.this)
            # sqlglot reads `x NOT LIKE p` as Like(negate=True), not Not(Like): the NOT is this flag
            matches = not node.args.get("negate")
            return lambda row: (
                None if (v := a(row)) is None else (pattern.fullmatch(str(v)) is not None) is matches
            )
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.Cast | exp.TryCast):
            return self._cast(node)
        if isinstance(node, exp.Floor):
            return self._floor(node)
        if isinstance(node, Step):
            a = c(node.this)
            step = dt.timedelta(seconds=interval_seconds(self.source, self.base, node.expression))
            return lambda row: (
                None if (v := a(row)) is None else EPOCH + ((as_timestamp(v) - EPOCH) // step) * step
            )
        if isinstance(node, exp.Upper | exp.Lower):
            a = c(node.this)
            method = str.upper if isinstance(node, exp.Upper) else str.lower
            return lambda row: None if (v := a(row)) is None else method(str(v))
        if isinstance(node, exp.Trim):
            return self._trim(node)
        if isinstance(node, exp.Substring):
            a, start = c(node.this), c(node.args["start"])
            length = c(node.args["length"]) if node.args.get("length") is not None else None
            return lambda row: substring(a(row), start(row), None if length is None else length(row))
        if isinstance(node, exp.StrPosition):
            needle, hay = c(node.args["substr"]), c(node.this)
            return lambda row: (
                None if (n := needle(row)) is None or (h := hay(row)) is None else str(h).find(str(n)) + 1
            )
        if isinstance(node, exp.Extract):
            unit = node.this.name.upper()
            if unit not in ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"):
                raise self.refuse(
                    node,
                    f"EXTRACT({unit} ...) is not supported",
                    "use YEAR, MONTH, DAY, HOUR, MINUTE or SECOND",
                )
            a = c(node.expression)
            return lambda row: None if (v := a(row)) is None else getattr(as_timestamp(v), unit.lower())
        if isinstance(node, exp.Anonymous):
            return self._function(node)
        if isinstance(node, exp.AggFunc | exp.Window):
            raise self.refuse(
                node,
                f"{sql_of(node)} is an aggregate here",
                "aggregate in a SELECT with GROUP BY, or over a window",
            )
        raise self.refuse(node, f"{sql_of(node)} is not part of the supported KDA SQL subset",
                          "see docs/kda-sql.md for the expressions tidelake reads")  # fmt: skip

    def _case(self, node: exp.Case) -> Fn:
        subject = self.compile(node.this) if node.this is not None else None
        branches = [(self.compile(i.this), self.compile(i.args["true"])) for i in node.args.get("ifs", [])]
        default = self.compile(node.args["default"]) if node.args.get("default") is not None else None

        def case(row: dict[str, Any]) -> Any:
            value = subject(row) if subject is not None else None
            for when, then in branches:
                test = when(row)
                if (subject is None and test is True) or (
                    subject is not None and value is not None and value == test
                ):
                    return then(row)
            return default(row) if default is not None else None

        return case

    def _cast(self, node: exp.Cast) -> Fn:
        target = node.args["to"]
        name = _TYPE_NAMES.get(target.this.name if hasattr(target.this, "name") else str(target.this))
        if name is None:
            raise self.refuse(
                node,
                f"CAST to {sql_of(target)} is not supported",
                "cast to VARCHAR, INTEGER, BIGINT, DOUBLE, DECIMAL, BOOLEAN or TIMESTAMP",
            )
        sizes = [int(e.this.this) for e in target.expressions if isinstance(e.this, exp.Literal)]
        sql_type = SqlType(name, sizes[0] if sizes else None)
        a = self.compile(node.this)
        lenient = name in ("VARCHAR", "CHAR")

        def cast(row: dict[str, Any]) -> Any:
            value = a(row)
            if lenient and value is not None:
                text = (
                    format_timestamp(value)
                    if isinstance(value, dt.datetime)
                    else sql_type.coerce(value)
                    if not isinstance(value, str)
                    else value
                )
                return text if sql_type.size is None else text[: sql_type.size]
            try:
                return sql_type.coerce(value)
            except ValueError as exc:
                msg = f"CAST({value!r} AS {sql_type.spelling}): {exc}"
                raise RowError(msg) from exc

        return cast

    def _floor(self, node: exp.Floor) -> Fn:
        a = self.compile(node.this)
        to = node.args.get("to")
        if to is None:
            return lambda row: None if (v := a(row)) is None else math.floor(v)
        unit = to.name.upper()
        if unit not in FLOOR_UNITS:
            raise self.refuse(
                node, f"FLOOR(... TO {unit}) is not supported", f"use one of {', '.join(FLOOR_UNITS)}"
            )
        return lambda row: None if (v := a(row)) is None else floor_time(as_timestamp(v), unit)

    def _trim(self, node: exp.Trim) -> Fn:
        a = self.compile(node.this)
        chars = self.compile(node.expression) if node.expression is not None else None
        position = str(node.args.get("position") or "BOTH").upper()

        def trim(row: dict[str, Any]) -> Any:
            value = a(row)
            if value is None:
                return None
            strip = " " if chars is None else chars(row)
            if position == "LEADING":
                return str(value).lstrip(strip)
            if position == "TRAILING":
                return str(value).rstrip(strip)
            return str(value).strip(strip)

        return trim

    def _function(self, node: exp.Anonymous) -> Fn:
        name = str(node.this).upper()
        args = [self.compile(e) for e in node.expressions]
        arity = {"CHAR_TO_TIMESTAMP": 2, "TIMESTAMP_TO_CHAR": 2, "TSDIFF": 2, "UNIX_TIMESTAMP": 1}
        if name not in arity:
            raise self.refuse(node, f"function {name} is not supported",
                              "see docs/kda-sql.md for the functions tidelake reads (user functions are refused)")  # fmt: skip
        if len(args) != arity[name]:
            raise self.refuse(
                node,
                f"{name} takes {arity[name]} argument(s)",
                f"write {name}({', '.join(['x'] * arity[name])})",
            )
        if name == "TSDIFF":
            a, b = args
            return lambda row: (
                None
                if (x := a(row)) is None or (y := b(row)) is None
                else (as_timestamp(x) - as_timestamp(y)) // dt.timedelta(milliseconds=1)
            )
        if name == "UNIX_TIMESTAMP":
            (a,) = args
            return lambda row: (
                None if (x := a(row)) is None else (as_timestamp(x) - EPOCH) // dt.timedelta(milliseconds=1)
            )
        fmt, value = args
        if name == "CHAR_TO_TIMESTAMP":
            return lambda row: None if (v := value(row)) is None else parse_with_format(str(fmt(row)), str(v))
        return lambda row: (
            None if (v := value(row)) is None else as_timestamp(v).strftime(java_format(str(fmt(row))))
        )
