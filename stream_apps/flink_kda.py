"""A KDA SQL program (stream_apps/kda_sql/) as Flink SQL: the programs whose whole work is one
tumbling-window pump from SOURCE_SQL_STREAM_001 into the output stream, with expressions Flink SQL
writes the same way. Everything else is refused naming the construct (FlinkUnsupported).

Translated: GROUP BY STEP(ROWTIME BY INTERVAL ...) or FLOOR(ROWTIME TO unit) (the window: TUMBLE)
and further GROUP BY items (the key); COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG;
WHERE; columns, number and text literals, NULL, TRUE/FALSE, CASE, IS [NOT] NULL, NOT, AND, OR,
comparisons, + - * and a window bound plus an INTERVAL. Each output column is typed as declared: a
TIMESTAMP is written as tidelake writes it, BIGINT/INTEGER as a whole number, DOUBLE/REAL/DECIMAL
as a floating-point number. The message key is the engine's: Python's text of the key tuple (e.g.
`('/index',)`), `|`, window_start; with no key, `|` and window_start.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from core.events import CLICKSTREAM_FIELDS
from core.topics import CLICKSTREAM_EVENTS
from stream_apps.flink_refusals import KDA_SHAPE, refuse
from stream_apps.flink_sql import _PARQUET_TO_FLINK, EVENT_TIME, ROWTIME, formatted, interval, literal, quote
from stream_apps.flink_windows import Query
from stream_apps.kda_sql.dialect import Step, parse_select, sql_of
from stream_apps.kda_sql.expressions import interval_seconds
from stream_apps.kda_sql.inputs import SOURCE_STREAM
from stream_apps.kda_sql.refusals import SourceText
from stream_apps.spec import AppSpec

_COMPARISONS = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_ARITHMETIC = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}
_AGGREGATES = {exp.Sum: "SUM", exp.Min: "MIN", exp.Max: "MAX"}
_OUTPUT_TYPES = {
    "timestamp": "STRING",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "text": "STRING",
}


class _Translator:
    """Flink SQL text of one pump's expressions; `columns` collects the source columns read."""

    def __init__(self, spec: AppSpec, source_text: SourceText, base: int) -> None:
        self.spec = spec
        self.program = spec.program
        self.source_text = source_text
        self.base = base
        self.columns: dict[str, str] = {}
        self.time_field = self.program.time_field
        schema = {n: _PARQUET_TO_FLINK.get(k, "STRING") for n, k, _ in CLICKSTREAM_FIELDS}
        self.schema = schema if spec.source == CLICKSTREAM_EVENTS else {}

    def refuse(self, node: exp.Expr, why: str = "") -> Exception:
        return refuse(self.spec.name, f"{sql_of(node)} (KDA SQL)", why or KDA_SHAPE)

    def is_time(self, node: exp.Expr) -> bool:
        return isinstance(node, exp.Column) and self.column_name(node) in ("ROWTIME", self.time_field)

    @staticmethod
    def column_name(node: exp.Column) -> str:
        ident = node.this
        return ident.this if ident.quoted else ident.this.upper()

    def is_window(self, node: exp.Expr) -> bool:
        """STEP(ROWTIME BY ...) or FLOOR(ROWTIME TO unit): the window (already checked by the compiler)."""
        if isinstance(node, Step):
            return self.is_time(node.this)
        return isinstance(node, exp.Floor) and node.args.get("to") is not None and self.is_time(node.this)

    def column(self, node: exp.Column, numeric: bool = False) -> str:
        name = self.column_name(node)
        field = name if node.this.quoted else name.lower()  # KDA's discovery named `$.page` PAGE
        kind = self.schema.get(field, "DOUBLE" if numeric else "STRING")
        self.columns.setdefault(field, kind)
        return quote(field)

    def sql(self, node: exp.Expr, *, numeric: bool = False) -> str:
        """Flink SQL of `node` (FlinkUnsupported for anything outside the module docstring's list)."""
        if isinstance(node, exp.Paren):
            return f"({self.sql(node.this, numeric=numeric)})"
        if isinstance(node, exp.Alias):
            return self.sql(node.this, numeric=numeric)
        if self.is_window(node):
            return "window_start"
        if isinstance(node, exp.Column):
            if self.is_time(node):
                raise self.refuse(node, "ROWTIME outside the window's STEP/FLOOR is not translated")
            return self.column(node, numeric)
        if isinstance(node, exp.Null):
            return "NULL"
        if isinstance(node, exp.Boolean):
            return "TRUE" if node.this else "FALSE"
        if isinstance(node, exp.Literal):
            return literal(node.this) if node.is_string else str(node.this)
        if (
            isinstance(node, exp.Add)
            and self.is_window(node.this)
            and isinstance(node.expression, exp.Interval)
        ):
            seconds = interval_seconds(self.source_text, self.base, node.expression)
            return f"window_start + {interval(int(seconds * 1_000_000))}"
        for kind, op in (*_COMPARISONS.items(), *_ARITHMETIC.items()):
            if isinstance(node, kind):
                number = isinstance(node.this, exp.Literal | exp.Neg) or isinstance(
                    node.expression, exp.Literal
                )
                number = number or kind in _ARITHMETIC
                left = self.sql(node.this, numeric=number and not _is_text(node.expression))
                right = self.sql(node.expression, numeric=number and not _is_text(node.this))
                return f"{left} {op} {right}"
        if isinstance(node, exp.And | exp.Or):
            op = "AND" if isinstance(node, exp.And) else "OR"
            return f"{self.sql(node.this)} {op} {self.sql(node.expression)}"
        if isinstance(node, exp.Not):
            return f"NOT {self.sql(node.this)}"
        if isinstance(node, exp.Neg):
            return f"-{self.sql(node.this, numeric=True)}"
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return f"{self.sql(node.this)} IS NULL"
        if isinstance(node, exp.Case) and node.this is None:
            whens = " ".join(f"WHEN {self.sql(i.this)} THEN {self.sql(i.args['true'], numeric=numeric)}"
                             for i in node.args["ifs"])  # fmt: skip
            default = node.args.get("default")
            tail = f" ELSE {self.sql(default, numeric=numeric)}" if default is not None else ""
            return f"CASE {whens}{tail} END"
        if isinstance(node, exp.Count):
            inner = node.this
            if isinstance(inner, exp.Star) or inner is None:
                return "COUNT(*)"
            if isinstance(inner, exp.Distinct):
                return f"COUNT(DISTINCT {self.sql(inner.expressions[0])})"
            return f"COUNT({self.sql(inner)})"
        if isinstance(node, exp.Avg) and not isinstance(node.this, exp.Distinct):
            return f"AVG(CAST({self.sql(node.this, numeric=True)} AS DOUBLE))"
        for aggregate, name in _AGGREGATES.items():
            if isinstance(node, aggregate) and not isinstance(node.this, exp.Distinct):
                return f"{name}({self.sql(node.this, numeric=name == 'SUM')})"
        raise self.refuse(node)


def _is_text(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _check_shape(spec: AppSpec) -> None:
    program = spec.program
    name = spec.name
    if program.input_columns:
        raise refuse(
            name, "a KDA SQL program read through --input-schema (RecordColumns mappings)", KDA_SHAPE
        )
    grouped = program.grouped
    for pump in program.pumps:
        if pump.table_function is not None:
            function = type(pump.table_function).__name__
            what = (
                "RANDOM_CUT_FOREST"
                if function == "ForestFunction"
                else "a table function (TOP_K_ITEMS_TUMBLING, COUNT_DISTINCT_ITEMS_TUMBLING)"
            )
            raise refuse(
                name, f"{what} in pump {pump.statement.name}", _FUNCTION_WHY[what == "RANDOM_CUT_FOREST"]
            )
    if grouped is None or len(program.pumps) != 1:
        what = (
            "a program without a windowed GROUP BY"
            if grouped is None
            else f"a program of {len(program.pumps)} pumps"
        )
        raise refuse(name, what, KDA_SHAPE)
    if grouped.from_stream != SOURCE_STREAM:
        raise refuse(name, f"pump {grouped.statement.name} reading {grouped.from_stream}", KDA_SHAPE)
    kind = grouped.window[0] if grouped.window else None
    if kind != "tumbling":
        from stream_apps.flink_refusals import STAGGER

        window = (
            "WINDOWED BY STAGGER" if kind == "stagger" else "a sliding window (OVER ... RANGE/ROWS PRECEDING)"
        )
        raise refuse(name, f"{window} (KDA SQL)", STAGGER if kind == "stagger" else KDA_SHAPE)
    if grouped.having is not None:
        raise refuse(name, "HAVING (KDA SQL)", KDA_SHAPE)


def _key_repr(expr: str, kind: str) -> str:
    """Python's repr() of one key value, as the engine writes a key tuple into the message key."""
    if kind == "BOOLEAN":
        return f"CASE WHEN {expr} IS NULL THEN 'None' WHEN {expr} THEN 'True' ELSE 'False' END"
    if kind != "STRING":
        return f"COALESCE(CAST({expr} AS STRING), 'None')"
    escaped = f"REPLACE({expr}, '\\', '\\\\')"
    for char, code in (("\\n", 10), ("\\r", 13), ("\\t", 9)):
        escaped = f"REPLACE({escaped}, CHR({code}), '{char}')"
    single = f"CONCAT('''', REPLACE({escaped}, '''', '\\'''), '''')"
    double = f"CONCAT('\"', {escaped}, '\"')"
    return (f"CASE WHEN {expr} IS NULL THEN 'None' WHEN POSITION('''' IN {expr}) > 0 AND "
            f"POSITION('\"' IN {expr}) = 0 THEN {double} ELSE {single} END")  # fmt: skip


def compile_program_query(spec: AppSpec, *, source: str, events: str, sink: str) -> Query:
    """The events view and the INSERT of a KDA SQL program (module docstring)."""
    _check_shape(spec)
    program = spec.program
    grouped = program.grouped
    statement = grouped.statement
    select = parse_select(program.source, statement.select, statement.select_offset)
    tr = _Translator(spec, program.source, statement.select_offset)
    group = select.args.get("group")
    keys = [node for node in (group.expressions if group else []) if not tr.is_window(node)]
    key_sql = [tr.sql(node) for node in keys]
    where = select.args.get("where")
    conditions = [f"{quote(ROWTIME)} IS NOT NULL"]
    if where is not None:
        conditions.append(f"({tr.sql(where.this)})")
    output = program.output
    names = program.target_columns(grouped)
    declared = {c.name: c for c in output.columns}
    items: list[str] = []
    sink_columns: dict[str, str] = {}
    for name, node in zip(names, select.expressions, strict=True):
        category = declared[name].type.category
        value = tr.sql(node, numeric=category in ("integer", "number"))
        if category == "timestamp":
            value = formatted(value)
        elif category == "integer":
            value = f"CAST({value} AS BIGINT)"
        elif category == "number":
            value = f"CAST({value} AS DOUBLE)"
        elif category == "text":
            value = f"CAST({value} AS STRING)"
        items.append(value)
        sink_columns[name] = _OUTPUT_TYPES[category]
    # the columns the sink declares, in the output stream's order (a pump may name them in another)
    ordered = [c.name for c in output.columns if c.name in sink_columns]
    by_name = dict(zip(names, items, strict=True))
    sink_columns = {n: sink_columns[n] for n in ordered}
    items = [by_name[n] for n in ordered]
    start = formatted("window_start")
    if keys:
        parts = [_key_repr(sql, _kind_of(tr, node)) for sql, node in zip(key_sql, keys, strict=True)]
        tuple_text = ", ', ', ".join(parts)
        tail = ",)" if len(parts) == 1 else ")"
        message = f"CONCAT('(', {tuple_text}, '{tail}|', {start})"
    else:
        message = f"CONCAT('|', {start})"
    columns = [quote(ROWTIME), quote(EVENT_TIME), *(quote(c) for c in tr.columns)]
    view = (f"CREATE VIEW {quote(events)} AS\nSELECT {', '.join(columns)}\nFROM {quote(source)}\n"
            f"WHERE {' AND '.join(conditions)}")  # fmt: skip
    size = grouped.window[1]
    window = f"TABLE(TUMBLE(TABLE {quote(events)}, DESCRIPTOR({quote(ROWTIME)}), {interval(size)}))"
    body = ",\n    ".join([message, *items])
    insert = (f"INSERT INTO {quote(sink)}\nSELECT\n    {body}\nFROM {window}\n"
              f"GROUP BY {', '.join(['window_start', 'window_end', *key_sql])}")  # fmt: skip
    return Query(dict(tr.columns), (view,), sink_columns, insert)


def _kind_of(tr: _Translator, node: exp.Expr) -> str:
    inner: Callable[[exp.Expr], exp.Expr] = lambda n: n.this if isinstance(n, exp.Paren | exp.Alias) else n  # noqa: E731
    node = inner(node)
    if isinstance(node, exp.Column):
        name = tr.column_name(node)
        return tr.columns.get(name if node.this.quoted else name.lower(), "STRING")
    return "STRING"


_FUNCTION_WHY = {
    True: "Flink SQL has no RANDOM_CUT_FOREST (nor any anomaly-score function); run the program on tidelake's own runtimes",
    False: "their rows (one per item, in the function's order) are not translated; write the Top-N as top:N:F in a TOML spec",
}
