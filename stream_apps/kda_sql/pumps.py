"""One pump's SELECT STREAM, checked against the subset and compiled to functions of rows.

A pump is one of:
- **grouped** (a streaming GROUP BY): `GROUP BY STEP(ROWTIME BY INTERVAL ...)` or
  `FLOOR(ROWTIME TO unit)` gives a tumbling window (AWS, KDA SQL Reference, "Tumbling Windows");
  `WINDOWED BY STAGGER (PARTITION BY ... RANGE INTERVAL ...)` a stagger window ("Stagger
  Windows"). The other GROUP BY / PARTITION BY items are the key (composite keys are tuples).
  SELECT and HAVING read the key, the window (its STEP / FLOOR item) and aggregates COUNT(*),
  COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG. One row per window and key, when it closes.
- **per row**: no GROUP BY and no aggregate: WHERE and SELECT applied to each row as it arrives.

`ROWTIME` is the event time (the app's time field), and so is the time field's own column.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

from stream_apps.kda_sql.dialect import Step, check_depth, node_offset, parse_select, sql_of
from stream_apps.kda_sql.expressions import (
    ExpressionCompiler,
    interval_seconds,
    key_of,
    name_of,
)
from stream_apps.kda_sql.forest_functions import compile_forest
from stream_apps.kda_sql.plans import AggregateCall, PumpPlan
from stream_apps.kda_sql.refusals import SourceText
from stream_apps.kda_sql.statements import PumpStatement, StreamStatement
from stream_apps.kda_sql.table_functions import compile_table_function

ROWTIME = "ROWTIME"
_STAGGER = re.compile(r"WINDOWED\s+BY\s+STAGGER\s*\(", re.IGNORECASE)
_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_FLOOR_TOO_LONG = "a FLOOR window is at most a DAY"


def _blank_stagger(source: SourceText, pump: PumpStatement) -> tuple[str, str | None, int]:
    """The SELECT without its `WINDOWED BY STAGGER (...)` clause, that clause's inside and its offset."""
    text = pump.select
    match = _STAGGER.search(text)
    if not match:
        return text, None, 0
    depth, at = 0, match.end() - 1
    for i in range(at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            inside = text[at + 1 : i]
            return text[: match.start()] + " " * (i + 1 - match.start()) + text[i + 1 :], inside, at + 1
    raise source.refuse(pump.select_offset + at, "WINDOWED BY STAGGER ( is never closed", "close it with )")


def _is_time(node: exp.Expr, time_field: str) -> bool:
    """ROWTIME (maybe qualified by its stream) or the time field's column."""
    return isinstance(node, exp.Column) and name_of(node.this) in (ROWTIME, time_field)


def _window_of(node: exp.Expr, time_field: str, source: SourceText, base: int) -> int | None:
    """Tumbling window size (µs) if `node` is STEP(time BY interval) or FLOOR(time TO unit)."""
    if isinstance(node, Step) and _is_time(node.this, time_field):
        return int(interval_seconds(source, base, node.expression) * 1_000_000)
    if isinstance(node, exp.Floor) and node.args.get("to") is not None and _is_time(node.this, time_field):
        unit = node.args["to"].name.upper()
        if unit not in _UNIT_SECONDS:
            raise source.refuse(
                base + node_offset(node), f"FLOOR(ROWTIME TO {unit}) as a window", _FLOOR_TOO_LONG
            )
        return _UNIT_SECONDS[unit] * 1_000_000
    return None


def _aggregate(node: exp.Expr, compiler: ExpressionCompiler) -> AggregateCall:
    distinct = isinstance(node.this, exp.Distinct)
    inner = node.this.expressions[0] if distinct else node.this
    if isinstance(node, exp.Count):
        if isinstance(inner, exp.Star) or inner is None:
            return AggregateCall("count", node.sql("kdasql"), None)
        arg = compiler.compile(inner)
        if distinct:
            return AggregateCall("count_distinct", node.sql("kdasql"), arg)
        return AggregateCall("sum", node.sql("kdasql"), lambda row: 0 if arg(row) is None else 1)
    kinds = {exp.Sum: "sum", exp.Min: "min", exp.Max: "max", exp.Avg: "avg"}
    for kind_type, kind in kinds.items():
        if isinstance(node, kind_type):
            if distinct and kind in ("sum", "avg"):
                raise compiler.refuse(
                    node, f"{kind.upper()}(DISTINCT ...) is not supported", f"write {kind.upper()}(x)"
                )
            return AggregateCall(kind, node.sql("kdasql"), compiler.compile(inner))
    raise compiler.refuse(
        node, f"aggregate {sql_of(node)} is not supported", "use COUNT, SUM, MIN, MAX or AVG"
    )


def compile_pump(source: SourceText, pump: PumpStatement, time_field: str, resolve: Callable[[str, exp.Column], str],
                 streams: dict[str, StreamStatement] | None = None) -> PumpPlan:  # fmt: skip
    """Check one pump against the subset and compile it. `resolve` maps the FROM stream's columns;
    `streams` (the declared in-application streams) give a RANDOM_CUT_FOREST cursor its columns."""
    base = pump.select_offset
    text, stagger, stagger_at = _blank_stagger(source, pump)
    select = parse_select(source, text, base)
    check_depth(source, select, base)
    if not isinstance(select, exp.Select):
        raise source.refuse(base, f"a pump's query must be one SELECT STREAM, not {type(select).__name__.upper()}",
                            "write one SELECT STREAM per pump; several pumps may insert into one stream")  # fmt: skip
    _refuse_outside_subset(source, base, select)
    from_ = select.args.get("from_") or select.args.get("from")
    table = from_.this if from_ is not None else None
    if isinstance(table, exp.Table) and not isinstance(table.this, exp.Identifier):
        compiled = compile_table_function(source, pump, select, table, resolve) or compile_forest(
            source, pump, select, table, resolve, streams
        )
        if compiled is not None:
            return compiled
        names = [
            str(f.this).upper()
            for f in table.find_all(exp.Anonymous)
            if str(f.this).upper() not in ("TABLE", "CURSOR")
        ]
        function = names[0] if names else "a table function"
        instead = _TABLE_FUNCTIONS.get(function, "read a stream by name")
        raise source.refuse(
            base + node_offset(table), f"TABLE({function}(...)) is not supported yet", instead
        )
    if not isinstance(table, exp.Table) or table.args.get("db") is not None:
        raise source.refuse(base + (node_offset(table) if table is not None else 0),
                            "a pump reads FROM one stream by name",
                            'write FROM "SOURCE_SQL_STREAM_001" or an in-application stream; TABLE(...) and subqueries are not supported')  # fmt: skip
    from_stream = name_of(table.this)
    row_compiler = ExpressionCompiler(source, base, resolve)
    plan = PumpPlan(pump, from_stream, None)
    where = select.args.get("where")
    if where is not None:
        plan.where = row_compiler.condition(where.this)
    group = select.args.get("group")
    group_items: list[exp.Expr] = list(group.expressions) if group is not None else []
    overs = [n for n in select.find_all(exp.Window) if isinstance(n.this, exp.AggFunc)]
    if overs:
        if group_items or stagger is not None or select.args.get("having") is not None:
            raise source.refuse(base + node_offset(overs[0]), "OVER (a sliding window) with GROUP BY, STAGGER or HAVING",
                                "a pump is either a sliding window (agg OVER w) or a GROUP BY window")  # fmt: skip
        return _sliding(source, base, select, overs, plan, row_compiler)
    window_item: exp.Expr | None = None
    window: tuple[str, int] | None = None
    if stagger is not None:
        if group_items:
            raise source.refuse(base + node_offset(group_items[0]), "GROUP BY with WINDOWED BY STAGGER",
                                "a stagger window groups by its PARTITION BY; drop the GROUP BY")  # fmt: skip
        group_items, size_us = _stagger_clause(source, base + stagger_at, stagger)
        window = ("stagger", size_us)
    else:
        for item in group_items:
            size = _window_of(item, time_field, source, base)
            if size is not None and window is None:
                window, window_item = ("tumbling", size), item
        if group_items and window is None:
            raise source.refuse(base + node_offset(group_items[0]), "a streaming GROUP BY needs a window",
                                "add STEP(ROWTIME BY INTERVAL '1' MINUTE) or FLOOR(ROWTIME TO MINUTE) to GROUP BY")  # fmt: skip
    keys = [item for item in group_items if item is not window_item]
    aggregate_nodes = [n for n in select.find_all(exp.AggFunc) if not isinstance(n.parent, exp.AggFunc)]
    having = select.args.get("having")
    if having is not None:
        aggregate_nodes += list(having.find_all(exp.AggFunc))
    if window is None:
        if aggregate_nodes:
            raise source.refuse(base + node_offset(aggregate_nodes[0]), f"{sql_of(aggregate_nodes[0])} without a window",
                                "add GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE) (a tumbling window)")  # fmt: skip
        if having is not None:
            raise source.refuse(base + node_offset(having), "HAVING without GROUP BY", "use WHERE")
        plan.select = [(_output_name(e), row_compiler.compile(e), e) for e in select.expressions]
        return plan
    plan.window = window
    plan.keys = [(key_of(k), row_compiler.compile(k)) for k in keys]
    seen: dict[exp.Expr, int] = {}
    for node in aggregate_nodes:
        if node not in seen:
            seen[node] = len(plan.aggregates)
            plan.aggregates.append(_aggregate(node, row_compiler))
    substitutions: dict[exp.Expr, str] = {k: f"__g{i}" for i, k in enumerate(keys)}
    substitutions.update((node, f"__a{i}") for node, i in seen.items())
    if window_item is not None:
        substitutions[window_item] = "__ws"

    def ungrouped(name: str, column: exp.Column) -> str:
        raise source.refuse(base + node_offset(column), f"column {sql_of(column)} is neither in GROUP BY nor aggregated",
                            f"add it to GROUP BY or aggregate it, e.g. MAX({sql_of(column)})")  # fmt: skip

    grouped = ExpressionCompiler(source, base, ungrouped, substitutions)
    plan.select = [(_output_name(e), grouped.compile(e), e) for e in select.expressions]
    if having is not None:
        plan.having = grouped.condition(having.this)
    return plan


def _sliding(source: SourceText, base: int, select: exp.Select, overs: list[exp.Window], plan: PumpPlan,
             row_compiler: ExpressionCompiler) -> PumpPlan:  # fmt: skip
    """`agg OVER w` with `w AS ([PARTITION BY ...] RANGE INTERVAL ... PRECEDING | ROWS n PRECEDING)`
    (AWS, KDA SQL Reference, "WINDOW Clause (Sliding Windows)"): one row per input row."""
    named = {name_of(w.this): w for w in select.args.get("windows") or []}
    specs = []
    for over in overs:
        alias = over.args.get("alias")
        if alias is not None and name_of(alias) not in named:
            raise source.refuse(base + node_offset(over), f"window {name_of(alias)} is not defined",
                                f"add WINDOW {name_of(alias)} AS (RANGE INTERVAL '1' MINUTE PRECEDING)")  # fmt: skip
        specs.append(named[name_of(alias)] if alias is not None else over)
    shapes = {
        (sql_of(w.args["spec"]) if w.args.get("spec") else "", tuple(sql_of(p) for p in w.args.get("partition_by") or []))
        for w in specs
    }  # fmt: skip
    if len(shapes) > 1:
        raise source.refuse(base + node_offset(overs[1]), "aggregates over different windows in one pump",
                            "give every aggregate of a pump the same window (one pump per window)")  # fmt: skip
    window = specs[0]
    frame = window.args.get("spec")
    side = str(frame.args.get("start_side") or "").upper() if frame is not None else ""
    if (
        frame is None
        or window.args.get("order") is not None
        or frame.args.get("end") is not None
        or side != "PRECEDING"
    ):
        raise source.refuse(base + node_offset(overs[0]), "a sliding window is RANGE INTERVAL 'n' UNIT PRECEDING or ROWS n PRECEDING",
                            "write WINDOW w AS (PARTITION BY \"k\" RANGE INTERVAL '1' MINUTE PRECEDING)")  # fmt: skip
    start = frame.args.get("start")
    if str(frame.args.get("kind")).upper() == "ROWS":
        if not isinstance(start, exp.Literal) or start.is_string or not str(start.this).isdigit():
            raise source.refuse(
                base + node_offset(overs[0]), "ROWS needs a whole number", "write ROWS 10 PRECEDING"
            )
        plan.rows_preceding = int(start.this)
        plan.window = ("sliding", 1)
    else:
        plan.window = ("sliding", int(interval_seconds(source, base, start) * 1_000_000))
    keys = list(window.args.get("partition_by") or [])
    plan.keys = [(key_of(k), row_compiler.compile(k)) for k in keys]
    substitutions: dict[exp.Expr, str] = {k: f"__g{i}" for i, k in enumerate(keys)}
    for over in overs:
        if over not in substitutions:
            substitutions[over] = f"__a{len(plan.aggregates)}"
            plan.aggregates.append(_aggregate(over.this, row_compiler))
    own = ExpressionCompiler(source, base, row_compiler.resolve, substitutions)
    plan.select = [(_output_name(e), own.compile(e), e) for e in select.expressions]
    return plan


def _stagger_clause(source: SourceText, at: int, inside: str) -> tuple[list[exp.Expr], int]:
    """`PARTITION BY a, b RANGE INTERVAL '1' MINUTE` -> ([a, b], size in µs)."""
    match = re.match(
        r"\s*PARTITION\s+BY\s+(.+?)\s+RANGE\s+(INTERVAL\s+.+?)\s*$", inside, re.IGNORECASE | re.DOTALL
    )
    if not match:
        raise source.refuse(at, "a stagger window is (PARTITION BY cols RANGE INTERVAL 'n' UNIT)",
                            "write WINDOWED BY STAGGER (PARTITION BY \"k\" RANGE INTERVAL '1' MINUTE)")  # fmt: skip
    parsed = parse_select(source, "SELECT" + " " * (match.start(1) - 6) + match.group(1), at)
    interval = parse_select(source, "SELECT" + " " * (match.start(2) - 6) + match.group(2), at)
    if not isinstance(parsed, exp.Select) or not isinstance(interval, exp.Select):
        raise source.refuse(
            at, "cannot read this stagger window", "write (PARTITION BY cols RANGE INTERVAL 'n' UNIT)"
        )
    size_us = int(interval_seconds(source, at, interval.expressions[0]) * 1_000_000)
    return list(parsed.expressions), size_us


def _output_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Alias):
        return name_of(node.args["alias"])
    if isinstance(node, exp.Column):
        return name_of(node.this)
    return node.sql("kdasql")


#: What to use today instead of KDA's table functions (docs/kda-sql.md: refused, with a plan).
_TABLE_FUNCTIONS = {
    "HOTSPOTS": "use a TOML spec's top:N:F aggregate for a categorical field",
}
_REFUSED: list[tuple[type, str, str]] = [
    (exp.Join, "JOIN is not supported", "run one app per input stream and join in Athena (tidelake query)"),
    (exp.Subquery, "subqueries are not supported", "chain pumps through an in-application stream instead"),
    (exp.Order, "ORDER BY is not supported on a stream", "drop it; rows come out in window order"),
    (exp.Limit, "LIMIT is not supported on a stream", "drop it; filter with WHERE or HAVING"),
    (exp.Distinct, "SELECT DISTINCT is not supported", "GROUP BY the columns in a tumbling window"),
]  # fmt: skip


#: The keyword a refused clause starts with: its position is the keyword's, not its first name's.
_KEYWORDS: dict[type, str] = {
    exp.Join: "JOIN",
    exp.Subquery: "(",
    exp.Order: "ORDER",
    exp.Limit: "LIMIT",
    exp.Distinct: "DISTINCT",
}


def _refuse_outside_subset(source: SourceText, base: int, select: exp.Select) -> None:
    text = source.text.upper()
    for node in select.walk():
        for kind, what, instead in _REFUSED:
            if isinstance(node, kind) and not (kind is exp.Distinct and isinstance(node.parent, exp.AggFunc)):
                at = base + node_offset(node)
                keyword = _KEYWORDS.get(kind)
                found = text.rfind(keyword, base, at + 1) if keyword else -1
                raise source.refuse(found if found >= 0 else at, what, instead)
        if isinstance(node, exp.Column) and name_of(node.this) == "CURRENT_ROW_TIMESTAMP":
            raise source.refuse(base + node_offset(node), "CURRENT_ROW_TIMESTAMP (arrival time) is not supported",
                                "use ROWTIME, which tidelake reads as the event time")  # fmt: skip
