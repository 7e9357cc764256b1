"""Athena's execution parameters: `?` placeholders and the SQL literals that fill them, bound by DuckDB.

Athena's rules ("Use parameterized queries", docs.aws.amazon.com/athena/latest/ug/
querying-with-prepared-statements.html): parameters are positional `?`, filled in order; each value
(`ExecutionParameters`, or a value of `EXECUTE ... USING`) is written as SQL: a string in single
quotes (`'404'`), a number as is (`404`), and other types with `CAST('2014-07-05' AS DATE)`.

tidelake reads each value as one SQL literal and hands DuckDB the typed Python value to bind
(`session.sql(text, params=[...])`); the text of a value never becomes part of the statement. Forms
read here, as Trino's literals (docs.aws.amazon.com/athena/latest/ug/data-types.html):

    'text' ('' for a quote)  -> VARCHAR        404, -7      -> integer (BIGINT)
    2.5, .5                  -> DECIMAL        1e3, 2.5E-1  -> DOUBLE
    true, false              -> BOOLEAN        NULL         -> NULL
    DATE 'YYYY-MM-DD'        -> DATE           TIMESTAMP 'YYYY-MM-DD HH:MM:SS[.fff]' -> TIMESTAMP
    CAST(<one of the above> AS <VARCHAR|CHAR|TINYINT|SMALLINT|INTEGER|INT|BIGINT|REAL|DOUBLE|
         DECIMAL[(p,s)]|BOOLEAN|DATE|TIMESTAMP>)

A count of values that differs from the statement's `?`s FAILS the execution with Athena's own
answer, `Incorrect number of parameters: expected 1 but found 0` (ErrorCategory 2, ErrorType 1006,
as reported from Athena in github.com/aws/aws-sdk-js-v3/issues/3837), not an error at
StartQueryExecution. Anything else (a column, a function call, a subquery) is a `ParameterError`: Athena evaluates
constant expressions, tidelake takes literals only. Where Trino would refuse a type mismatch
(`status = '404'` on an integer column), DuckDB casts the bound value to the column's type.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import duckdb

from core.errors import QueryError

_STRING = re.compile(r"^'((?:[^']|'')*)'$", re.DOTALL)
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")
_DOUBLE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")
_TYPED = re.compile(r"^(DATE|TIMESTAMP)\s*('(?:[^']|'')*')$", re.IGNORECASE | re.DOTALL)
_CAST = re.compile(
    r"^CAST\s*\(\s*(?P<value>.+?)\s+AS\s+(?P<type>[A-Za-z]+)\s*(?P<args>\(\s*\d+\s*(,\s*\d+\s*)?\))?\s*\)$",
    re.IGNORECASE | re.DOTALL,
)
#: Athena's limit on one value (botocore's ExecutionParameter: 1-1,024 characters).
MAX_VALUE_CHARS = 1024


class ParameterError(QueryError):
    """An execution parameter that is not a literal, or a count that does not match the `?`s.

    The execution FAILED with it, as on Athena (ErrorCategory 2, user)."""


def literal(text: str) -> Any:
    """The typed value of one SQL literal as Athena's ExecutionParameters spell it; ParameterError if not one."""
    value = text.strip()
    found = _STRING.match(value)
    if found:
        return found.group(1).replace("''", "'")
    if _INTEGER.match(value):
        return int(value)
    if _DECIMAL.match(value):
        return Decimal(value)
    if _DOUBLE.match(value):
        return float(value)
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    typed = _TYPED.match(value)
    if typed:
        return _cast(literal(typed.group(2)), typed.group(1).upper(), None, text)
    cast = _CAST.match(value)
    if cast:
        return _cast(literal(cast["value"]), cast["type"].upper(), cast["args"], text)
    msg = (
        f"execution parameter {text!r} is not a literal; tidelake binds literals only: 'text', 404, 2.5, "
        "1e3, true, NULL, DATE '2026-11-23', TIMESTAMP '2026-11-23 07:00:00' or CAST(<literal> AS <type>)"
    )
    raise ParameterError(msg)


def _cast(value: Any, kind: str, args: str | None, text: str) -> Any:
    if value is None:
        return None
    try:
        if kind in ("VARCHAR", "CHAR", "STRING"):
            return value if isinstance(value, str) else _plain(value)
        if kind in ("TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT"):
            return int(Decimal(str(value)).to_integral_value()) if not isinstance(value, bool) else int(value)
        if kind in ("REAL", "FLOAT", "DOUBLE"):
            return float(value)
        if kind == "DECIMAL":
            scale = int(args.strip("() ").split(",")[1]) if args and "," in args else 0
            return Decimal(str(value)).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        if kind == "BOOLEAN":
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError(value)
        if kind == "DATE":
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value).strip())
        if kind == "TIMESTAMP":
            return dt.datetime.fromisoformat(str(value).strip())
    except (ValueError, InvalidOperation, TypeError) as exc:
        msg = f"execution parameter {text!r}: {value!r} is not a {kind}"
        raise ParameterError(msg) from exc
    msg = f"execution parameter {text!r}: CAST to {kind} is not one tidelake binds (see docs/queries.md)"
    raise ParameterError(msg)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def split_values(text: str) -> list[str]:
    """`1, 'a,b', CAST('x' AS DECIMAL(4,2))` -> its three values: commas inside quotes or parentheses stay."""
    values: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted  # '' inside a string toggles twice: it stays quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    values.append("".join(current).strip())
    if quoted or depth != 0 or any(not v for v in values):
        msg = f"the values {text!r} are not a comma-separated list of literals"
        raise ParameterError(msg)
    return values


_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


def placeholders(sql: str) -> int | None:
    """How many distinct parameters (`?`, `$1`, `$name`) DuckDB's parser finds in `sql`; None if it cannot
    parse it (the run then reports the parser's own error). One in-memory DuckDB without file access
    parses them all."""
    global _parser
    if "?" not in sql and "$" not in sql:
        return 0
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:", config={"enable_external_access": False})
        rows = _parser.execute("SELECT json_serialize_sql($sql::VARCHAR)", {"sql": sql}).fetchall()
    tree = json.loads(rows[0][0]) if rows else {}
    if not tree or tree.get("error"):
        return None
    seen: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class") == "PARAMETER":
                seen.add(str(item.get("identifier")))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return len(seen)


def bind(sql: str, values: list[str]) -> list[Any]:
    """The typed values for `sql`'s `?`s, in order; ParameterError with Athena's message when the count differs."""
    expected = placeholders(sql)
    if expected is not None and expected != len(values):
        msg = f"Incorrect number of parameters: expected {expected} but found {len(values)}"
        raise ParameterError(msg)
    return [literal(v) for v in values]
