"""KDA's anomaly table functions over `CURSOR(SELECT STREAM ... FROM stream)` (AWS, KDA SQL
Reference, "RANDOM_CUT_FOREST" and "RANDOM_CUT_FOREST_WITH_EXPLANATION"):

    SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "S")
        [, numberOfTrees, subSampleSize, timeDecay, shingleSize]))
    SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST_WITH_EXPLANATION(CURSOR(SELECT STREAM * FROM "S")
        [, numberOfTrees, subSampleSize, timeDecay, shingleSize, withDirectionality]))

Defaults as AWS's: 100 trees, a sub-sample of 256, time decay 100000, shingle 1, no directionality.
Each cursor row gives one output row: every cursor column, then `ANOMALY_SCORE` (DOUBLE) and, with
explanation, `ANOMALY_EXPLANATION`: a JSON VARCHAR with one object per numeric column,
`{"ATTRIBUTION_SCORE": "0.1234"}`, plus `"STRENGTH"` and `"DIRECTION"` (`HIGH`|`LOW`) with
directionality (numbers as text, as in AWS's example output).

tidelake's reading: the numeric columns of the cursor (INTEGER, BIGINT, SMALLINT, TINYINT, DOUBLE,
REAL, FLOAT, DECIMAL; NULL counts as 0) are one point, scored by stream_apps/anomaly.py's rrcf
forest with a fixed seed (scores are not numerically AWS's); the forest is a sliding window of the
last subSampleSize shingles, so timeDecay is accepted and not used. An attribution is the share of
the score whose deciding cut split that column (they sum to the score); DIRECTION is HIGH when the
value is at least the mean of the column's values (the forest's points and this one), STRENGTH is
|value - mean| over their range (0 when they are all equal). The function reads a stream that a windowed pump fills,
so that its rows come in window order; the forests are part of the app's snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from stream_apps.anomaly import RandomCutForest
from stream_apps.kda_sql.dialect import node_offset, sql_of, table_call
from stream_apps.kda_sql.expressions import ExpressionCompiler, name_of
from stream_apps.kda_sql.inputs import SOURCE_STREAM
from stream_apps.kda_sql.plans import PumpPlan
from stream_apps.kda_sql.refusals import SourceText
from stream_apps.kda_sql.statements import PumpStatement, StreamStatement
from stream_apps.kda_sql.type_checks import infer

RCF = "RANDOM_CUT_FOREST"
RCF_EXPLAINED = "RANDOM_CUT_FOREST_WITH_EXPLANATION"
ANOMALY_SCORE = "ANOMALY_SCORE"
ANOMALY_EXPLANATION = "ANOMALY_EXPLANATION"
#: (name, default, lowest, highest) of the numeric parameters after the cursor.
PARAMETERS = (("numberOfTrees", 100, 1, 1000), ("subSampleSize", 256, 10, 1000),
              ("timeDecay", 100_000, 1, 2**31 - 1), ("shingleSize", 1, 1, 30))  # fmt: skip
SEED = 7
_NUMERIC = ("integer", "number")


@dataclass
class ForestFunction:
    """One pump's RCF: the cursor's columns (name, category, value), its parameters."""

    name: str
    cursor: list[tuple[str, str | None, Callable[[dict[str, Any]], Any]]]
    num_trees: int = 100
    sub_sample: int = 256
    time_decay: int = 100_000
    shingle_size: int = 1
    directional: bool = False
    numeric: list[str] = field(default_factory=list)

    @property
    def explained(self) -> bool:
        return self.name == RCF_EXPLAINED

    @property
    def columns(self) -> dict[str, str | None]:
        """Output column -> category: the cursor's, ANOMALY_SCORE [, ANOMALY_EXPLANATION]."""
        out = {name: category for name, category, _ in self.cursor}
        out[ANOMALY_SCORE] = "number"
        if self.explained:
            out[ANOMALY_EXPLANATION] = "text"
        return out

    def new_forest(self) -> RandomCutForest:
        return RandomCutForest(self.num_trees, self.sub_sample, self.shingle_size, SEED)

    def scored(self, env: dict[str, Any], forest: RandomCutForest) -> dict[str, Any]:
        """The cursor row of `env` with its ANOMALY_SCORE (and ANOMALY_EXPLANATION)."""
        row = {name: value(env) for name, _, value in self.cursor}
        point = [float(row[name] or 0) for name in self.numeric]
        recent = _recent(forest, len(point)) if self.directional else []
        score = forest.score(point)
        row[ANOMALY_SCORE] = round(score.score, 6)
        if self.explained:
            explanation: dict[str, dict[str, str]] = {}
            for i, name in enumerate(self.numeric):
                item = {"ATTRIBUTION_SCORE": f"{score.attribution[i]:.4f}"}
                if self.directional:
                    values = [p[i] for p in recent] + [point[i]]
                    mean = sum(values) / len(values)
                    spread = max(values) - min(values)
                    item["STRENGTH"] = f"{abs(point[i] - mean) / spread if spread else 0.0:.4f}"
                    item["DIRECTION"] = "HIGH" if point[i] >= mean else "LOW"
                explanation[name] = item
            row[ANOMALY_EXPLANATION] = json.dumps(explanation)
        row["ROWTIME"] = env.get("ROWTIME")
        return row


def _recent(forest: RandomCutForest, columns: int) -> list[list[float]]:
    """The points the forest holds (each shingle's newest point), at most sub-sample many."""
    shingles = (forest.base + forest.since)[-forest.tree_size :]
    return [s[-columns:] for s in shingles]


class Forests:
    """The forests of a program's RCF pumps, by pump name: engine state (stream_apps/engine.py
    keeps one per engine and puts `snapshot()` in the app's snapshot)."""

    def __init__(self, functions: dict[str, ForestFunction]) -> None:
        self.forests = {name: function.new_forest() for name, function in functions.items()}

    def snapshot(self) -> dict[str, Any]:
        return {name: forest.state() for name, forest in self.forests.items()}

    def restore(self, state: dict[str, Any] | None) -> None:
        for name, forest in self.forests.items():
            forest.restore((state or {}).get(name))


def _whole(node: exp.Expr) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit():
        return int(node.this)
    return None


def compile_forest(source: SourceText, pump: PumpStatement, select: exp.Select, table: exp.Table,
                   resolve: Callable[[str, exp.Column], str],
                   streams: dict[str, StreamStatement] | None) -> PumpPlan | None:  # fmt: skip
    """The plan of `SELECT ... FROM TABLE(RANDOM_CUT_FOREST[_WITH_EXPLANATION](CURSOR(...), ...))`,
    or None when the function is another one. The cursor reads an in-application stream by name."""
    base = pump.select_offset
    name, call = table_call(table)
    if call is None or name not in (RCF, RCF_EXPLAINED):
        return None
    args = list(call.expressions)
    most = 6 if name == RCF_EXPLAINED else 5
    usage = f'write {name}(CURSOR(SELECT STREAM * FROM "S"){", 100, 256, 100000, 1" + (", true" if name == RCF_EXPLAINED else "")})'
    cursor = args[0] if args else None
    inner = cursor.expressions[0] if isinstance(cursor, exp.Anonymous) and cursor.expressions else None
    if (
        len(args) not in (1, most - 1 if name == RCF_EXPLAINED else most, most)
        or str(getattr(cursor, "this", "")).upper() != "CURSOR"
        or not isinstance(inner, exp.Select)
    ):
        raise source.refuse(base + node_offset(table), f"{name} takes a CURSOR and, optionally, numberOfTrees, subSampleSize, timeDecay, shingleSize{', withDirectionality' if name == RCF_EXPLAINED else ''}", usage)  # fmt: skip
    values: list[int] = []
    for (param, _, low, high), arg in zip(PARAMETERS, args[1:5], strict=False):
        value = _whole(arg)
        if value is None or not low <= value <= high:
            raise source.refuse(base + node_offset(arg), f"{name}: {param} is a whole number from {low} to {high}", usage)  # fmt: skip
        values.append(value)
    values += [p[1] for p in PARAMETERS[len(values) :]]
    directional = False
    if len(args) == 6:
        if not isinstance(args[5], exp.Boolean):
            raise source.refuse(
                base + node_offset(args[5]), f"{name}: withDirectionality is true or false", usage
            )
        directional = bool(args[5].this)
    inner_from = inner.args.get("from_") or inner.args.get("from")
    inner_table = inner_from.this if inner_from is not None else None
    if (
        not isinstance(inner_table, exp.Table)
        or not isinstance(inner_table.this, exp.Identifier)
        or inner.args.get("group") is not None
        or any(isinstance(n, exp.AggFunc) for n in inner.find_all(exp.AggFunc))
    ):
        raise source.refuse(base + node_offset(inner), "the CURSOR reads one stream by name, without GROUP BY or aggregates", usage)  # fmt: skip
    stream_name = name_of(inner_table.this)
    stream = (streams or {}).get(stream_name)
    if stream_name == SOURCE_STREAM:
        raise source.refuse(base + node_offset(inner_table), f"{name} reads {SOURCE_STREAM} directly, whose rows arrive in no fixed order across partitions",
                            "count per window into an in-application stream first (a pump with GROUP BY STEP(ROWTIME BY INTERVAL '60' SECOND)), then score that stream: its rows come in window order")  # fmt: skip
    if stream is None:
        raise source.refuse(base + node_offset(inner_table), f"{name} reads {stream_name}, which no CREATE STREAM declares",
                            "count per window into an in-application stream first (a pump with GROUP BY STEP(...)), then score that stream")  # fmt: skip
    declared = {c.name: c.type.category for c in stream.columns}

    def column(column_name: str, node: exp.Column) -> str:
        if column_name not in declared and column_name != "ROWTIME":
            raise source.refuse(base + node_offset(node), f"{stream_name} has no column {column_name}", f"its columns are {', '.join(declared)}")  # fmt: skip
        return resolve(column_name, node)

    rows = ExpressionCompiler(source, base, column)
    cursor_items: list[tuple[str, str | None, Callable[[dict[str, Any]], Any]]] = []
    for item in inner.expressions:
        nodes = [exp.column(c, quoted=True) for c in declared] if isinstance(item, exp.Star) else [item]
        for node in nodes:
            label = _label(node)
            cursor_items.append((label, infer(node, lambda n: "timestamp" if n == "ROWTIME" else declared.get(n)), rows.compile(node)))  # fmt: skip
    trees, sub_sample, decay, shingle = values
    function = ForestFunction(name, cursor_items, trees, sub_sample, decay, shingle, directional)
    function.numeric = [n for n, category, _ in cursor_items if category in _NUMERIC]
    if not function.numeric:
        raise source.refuse(base + node_offset(inner), f"{name}: the CURSOR has no numeric column to score",
                            "select at least one INTEGER, BIGINT or DOUBLE column (e.g. a COUNT per window)")  # fmt: skip
    plan = PumpPlan(pump, stream_name, None)
    if inner.args.get("where") is not None:
        plan.where = rows.condition(inner.args["where"].this)
    plan.table_function = function

    def output(column_name: str, node: exp.Column) -> str:
        if column_name not in function.columns and column_name != "ROWTIME":
            raise source.refuse(base + node_offset(node), f"{name} has no column {column_name}", f"its columns are {', '.join(function.columns)}")  # fmt: skip
        return column_name

    outer = ExpressionCompiler(source, base, output)
    items: list[exp.Expr] = []
    for item in select.expressions:
        items += (
            [exp.column(c, quoted=True) for c in function.columns] if isinstance(item, exp.Star) else [item]
        )
    plan.select = [(_label(i), outer.compile(i), i) for i in items]
    if select.args.get("where") is not None:
        plan.having = outer.condition(select.args["where"].this)
    return plan


def _label(node: exp.Expr) -> str:
    if isinstance(node, exp.Alias):
        return name_of(node.args["alias"])
    if isinstance(node, exp.Column):
        return name_of(node.this)
    return sql_of(node)
