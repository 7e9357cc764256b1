"""Static types of SELECT items, so that an item that cannot fill its column is refused before
anything runs, naming the column: `column "window_start" is TIMESTAMP but COUNT(*) gives integer`.

Categories as columns.py names them; None means not known before the data arrives (a source column
without an input schema), which is never refused. Integer and number fill each other's columns.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from stream_apps.kda_sql.dialect import Step
from stream_apps.kda_sql.expressions import name_of

_BOOLEAN = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And, exp.Or, exp.Not, exp.In, exp.Between,
            exp.Like, exp.Is, exp.Boolean)  # fmt: skip
_TEXT = (exp.Upper, exp.Lower, exp.Trim, exp.Substring, exp.DPipe)
_INTEGER = (exp.Count, exp.Extract, exp.StrPosition)
_FUNCTIONS = {"TSDIFF": "integer", "UNIX_TIMESTAMP": "integer", "CHAR_TO_TIMESTAMP": "timestamp",
              "TIMESTAMP_TO_CHAR": "text"}  # fmt: skip
_CAST = {"VARCHAR": "text", "CHAR": "text", "TEXT": "text", "INT": "integer", "BIGINT": "integer",
         "SMALLINT": "integer", "TINYINT": "integer", "DOUBLE": "number", "FLOAT": "number", "DECIMAL": "number",
         "BOOLEAN": "boolean", "TIMESTAMP": "timestamp", "TIMESTAMPTZ": "timestamp"}  # fmt: skip


def infer(node: exp.Expr, column: Callable[[str], str | None]) -> str | None:
    """The category of `node`'s values; `column(name)` gives a column's category (or None)."""
    if isinstance(node, exp.Paren | exp.Alias):
        return infer(node.this, column)
    if isinstance(node, exp.Column):
        return column(name_of(node.this))
    if isinstance(node, exp.Literal):
        if node.is_string:
            return "text"
        return "number" if any(ch in node.this for ch in ".eE") else "integer"
    if isinstance(node, _BOOLEAN):
        return "boolean"
    if isinstance(node, _TEXT):
        return "text"
    if isinstance(node, _INTEGER):
        return "integer"
    if isinstance(node, exp.Avg):
        return "number"
    if isinstance(node, Step) or (isinstance(node, exp.Floor) and node.args.get("to") is not None):
        return "timestamp"
    if isinstance(node, exp.Sum | exp.Min | exp.Max):
        return infer(node.this, column)
    if isinstance(node, exp.Cast | exp.TryCast):
        return _CAST.get(node.args["to"].this.name)
    if isinstance(node, exp.Anonymous):
        return _FUNCTIONS.get(str(node.this).upper())
    if isinstance(node, exp.Case):
        for branch in [*(i.args["true"] for i in node.args.get("ifs", [])), node.args.get("default")]:
            found = infer(branch, column) if branch is not None else None
            if found is not None:
                return found
        return None
    if isinstance(node, exp.Add | exp.Sub):
        kinds = {infer(node.this, column), infer(node.expression, column)}
        if "timestamp" in kinds:
            return "timestamp"
        return _numeric(kinds)
    if isinstance(node, exp.Mul | exp.Div | exp.Mod | exp.Neg | exp.Floor):
        return _numeric(
            {infer(node.this, column), infer(node.expression, column) if node.expression else "integer"}
        )
    return None


def _numeric(kinds: set[str | None]) -> str | None:
    if None in kinds:
        return None
    return "integer" if kinds == {"integer"} else "number"


def fits(column: str, value: str | None) -> bool:
    """Whether values of category `value` can fill a column of category `column`."""
    if value is None or value == column:
        return True
    return {column, value} <= {"integer", "number"}


def failing_cast(node: exp.Expr, column: Callable[[str], str | None]) -> tuple[exp.Expr, str] | None:
    """The first CAST in `node` that fails for every value (a TIMESTAMP cast to a number or a
    BOOLEAN) and the category it casts to; None when there is none."""
    for cast in node.find_all(exp.Cast, exp.TryCast):
        to = _CAST.get(cast.args["to"].this.name)
        if to in ("integer", "number", "boolean") and infer(cast.this, column) == "timestamp":
            return cast, to
    return None


def instead_of(column_spelling: str, column_category: str, found: str, sql: str) -> str:
    """What to write when `sql` (of category `found`) cannot fill a column: a CAST only where one
    can succeed."""
    if found == "timestamp" and column_category in ("integer", "number"):
        return f"change the column's type to TIMESTAMP, or write UNIX_TIMESTAMP({sql}) (milliseconds since 1970-01-01)"
    if found == "timestamp" and column_category == "boolean":
        return "change the column's type to TIMESTAMP"
    return f"CAST({sql} AS {column_spelling}) or change the column's type"
