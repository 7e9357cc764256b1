"""KDA SQL's SELECT as a sqlglot dialect: the default dialect plus `STEP(x BY INTERVAL 'n' UNIT)`.

`FLOOR(x TO UNIT)`, `INTERVAL 'n' UNIT`, `CASE`, `CAST`, `EXTRACT`, `POSITION(a IN b)`,
`SUBSTRING(a FROM i FOR n)`, `TRIM(BOTH c FROM a)` and `WINDOW w AS (...)` are read by sqlglot's
default parser already. `WINDOWED BY STAGGER (...)` is not SQL sqlglot knows: the pump's text is
searched for it before parsing (program.py). Positions of nodes come from the `start` of their
identifiers and function names (sqlglot's `meta`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp, generator, parser
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError

from stream_apps.kda_sql.refusals import SourceText


class Step(exp.Expression, exp.Func):
    """`STEP(x BY INTERVAL ...)`: the start of the tumbling window of size INTERVAL holding x."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "expression": True}


def _parse_step(self: Any) -> exp.Expression:
    this = self._parse_bitwise()
    if not self._match_text_seq("BY"):
        self.raise_error("STEP needs BY INTERVAL 'n' UNIT")
    return self.expression(Step(this=this, expression=self._parse_bitwise()))


class KdaSql(Dialect):
    """sqlglot's default dialect with STEP."""

    class Generator(generator.Generator):
        TRANSFORMS: ClassVar[dict[Any, Any]] = {
            **generator.Generator.TRANSFORMS,
            Step: lambda self, e: f"STEP({self.sql(e, 'this')} BY {self.sql(e, 'expression')})",
        }

    class Parser(parser.Parser):
        FUNCTION_PARSERS: ClassVar[dict[str, Any]] = {**parser.Parser.FUNCTION_PARSERS, "STEP": _parse_step}


def parse_select(source: SourceText, text: str, offset: int) -> exp.Expr:
    """Parse the SELECT at `offset` of the program; a syntax error is refused with its position."""
    try:
        parsed = KdaSql().parse(text)
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        line, col = first.get("line", 1), first.get("col", 1)
        lines = text.split("\n")
        at = sum(len(lines[i]) + 1 for i in range(min(line - 1, len(lines)))) + max(col - 1, 0)
        detail = str(first.get("description") or error).split("\n")[0]
        raise source.refuse(
            offset + at, f"cannot read this SELECT: {detail}", "see docs/kda-sql.md"
        ) from error
    except TokenError as error:
        raise source.refuse(offset, f"cannot read this SELECT: {error}", "see docs/kda-sql.md") from error
    except RecursionError:
        raise source.refuse(offset, *_TOO_DEEP) from None
    statements = [s for s in parsed if s is not None]
    if len(statements) != 1:
        raise source.refuse(offset, "a pump has one SELECT", "end the statement with ;")
    return statements[0]


#: Deeper expressions (a chain of 300 `+`) are refused: compiling and evaluating them recurses per level.
MAX_EXPRESSION_DEPTH = 256
_TOO_DEEP = (
    f"this SELECT is nested too deeply; at most {MAX_EXPRESSION_DEPTH} levels of operators and functions",
    "compute a part in a pump of its own into an in-application stream and read that stream",
)


def check_depth(source: SourceText, node: exp.Expr, offset: int) -> None:
    """Refuse a parsed SELECT deeper than MAX_EXPRESSION_DEPTH (counted without recursing), at the
    start of its clause or item that goes past it."""
    stack: list[tuple[exp.Expr, int, exp.Expr]] = [(child, 2, child) for child in node.iter_expressions()]
    while stack:
        current, depth, item = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise source.refuse(offset + node_offset(item), *_TOO_DEEP)
        stack.extend((child, depth + 1, item) for child in current.iter_expressions())


def node_offset(node: exp.Expr) -> int:
    """The smallest `start` among the node's tokens (0 when sqlglot kept none)."""
    starts = [n.meta["start"] for n in node.walk() if isinstance(n, exp.Expr) and "start" in n.meta]
    return min(starts) if starts else 0


def sql_of(node: exp.Expr) -> str:
    """A node as KDA SQL text (STEP(x BY INTERVAL ...) included): for messages and GROUP BY matching."""
    return node.sql(dialect=KdaSql)


def table_call(table: exp.Table) -> tuple[str, exp.Anonymous | None]:
    """The function a `FROM TABLE(fn(...))` calls: (its name in upper case, the call), or ("", None)
    when the table is not such a call."""
    call = (
        table.this.expressions[0]
        if isinstance(table.this, exp.Anonymous) and table.this.expressions
        else None
    )
    if not isinstance(call, exp.Anonymous):
        return "", None
    return str(call.this).upper(), call
