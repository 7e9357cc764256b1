"""A whole KDA SQL program compiled to one stream app: the streams, the pumps, the output.

The pumps run from `SOURCE_SQL_STREAM_001` through in-application streams to one output stream
(the stream no pump reads), per-row pumps and at most one windowed pump (its window is the app's);
pump_graph.py says which shapes are accepted.

`Program` is what the window engine calls: `prepare(event, t_us)` (stream_apps/engine.py) turns a
source record into the windowed pump's key and aggregate arguments (or a per-row program's output
rows), `rows(key, start_us, end_us, results, own, state)` (stream_apps/outbox.py, as the closed
window's rows are formatted) turns a closed window into output rows;
`new_state()` gives the engine the program's own state (the forests of RANDOM_CUT_FOREST pumps,
which score the rows after the window), which the engine keeps in the app's snapshot. Rows are dicts
named by the output stream's declared columns, in declared order, typed by them.

Settings KDA kept outside its SQL (application configuration) can sit in the program's comments,
one per line: `-- tidelake: allowed_lateness = 5s`; flags of `tidelake stream run` win over them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot import exp

from core.errors import ConfigError
from stream_apps.kda_sql.columns import to_timestamp
from stream_apps.kda_sql.dialect import node_offset, sql_of
from stream_apps.kda_sql.forest_functions import ForestFunction, Forests
from stream_apps.kda_sql.functions import EPOCH
from stream_apps.kda_sql.inputs import DESTINATION_STREAM, SOURCE_STREAM, InputColumn, RejectedRecord
from stream_apps.kda_sql.plans import PumpPlan
from stream_apps.kda_sql.pump_graph import PumpGraph, build_graph
from stream_apps.kda_sql.pumps import ROWTIME, compile_pump
from stream_apps.kda_sql.refusals import SourceText
from stream_apps.kda_sql.statements import (
    NESTED_TOO_DEEPLY,
    SPLIT_IT,
    PumpStatement,
    StreamStatement,
    parse_statements,
)
from stream_apps.kda_sql.type_checks import failing_cast, fits, infer, instead_of

_SETTING = re.compile(r"^\s*--\s*tidelake:\s*([a-z_]+)\s*=\s*(.+?)\s*$", re.MULTILINE)
#: KDA's limit on application code (AWS, Kinesis Data Analytics API Reference, CreateApplication:
#: `ApplicationCode`, length 0 to 102400).
MAX_PROGRAM_CHARS = 102_400
#: Output columns whose declared type a JSON value must fit (text columns take any value as text).
_CHECKED_CATEGORIES = frozenset({"integer", "number", "boolean", "timestamp"})
SETTINGS = ("source", "sink_topic", "time_field", "allowed_lateness", "idle_timeout", "name")


@dataclass
class Program:
    """A compiled program (module docstring). `pumps` in chain order; `grouped` is the windowed one."""

    source: SourceText
    streams: dict[str, StreamStatement]
    pumps: list[PumpPlan]
    time_field: str
    input_columns: tuple[InputColumn, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    graph: PumpGraph | None = None

    @property
    def _graph(self) -> PumpGraph:
        if self.graph is None:
            self.graph = build_graph(self.source, self.pumps)
        return self.graph

    @property
    def _folded(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(n for p in self._graph.readers[SOURCE_STREAM] for n in p.folded_source_names)
        )

    @property
    def grouped(self) -> PumpPlan | None:
        return self._graph.grouped

    @property
    def stateless(self) -> bool:
        return self.grouped is None

    @property
    def sliding_rows(self) -> int | None:
        """`ROWS n PRECEDING`: n (the engine counts rows instead of time)."""
        return None if self.grouped is None else self.grouped.rows_preceding

    @property
    def sliding_inclusive(self) -> bool:
        """KDA's RANGE window holds `[t - range, t]`: its lower bound is included (AWS, KDA SQL
        Reference, "Windowed Aggregation on Streams": the 24-hour window at 2018-11-02 01:00 still
        holds the reading of 2018-11-01 01:00)."""
        return (
            self.grouped is not None
            and self.grouped.window is not None
            and self.grouped.window[0] == "sliding"
        )

    @property
    def carries_row(self) -> bool:
        """A sliding window's output row carries its input row's own columns."""
        return self.sliding_inclusive

    @property
    def output(self) -> StreamStatement:
        return self.streams[self._graph.output]

    @property
    def fingerprint(self) -> str:
        schema = ";".join(f"{c.name}:{c.type.spelling}:{c.path}" for c in self.input_columns)
        digest = hashlib.sha256(f"{self.source.text}|{self.time_field}|{schema}".encode()).hexdigest()
        return f"kda-sql:{digest[:16]}"

    @property
    def forest_functions(self) -> dict[str, ForestFunction]:
        """RANDOM_CUT_FOREST[_WITH_EXPLANATION] pumps' functions, by pump name."""
        return {p.statement.name: p.table_function for p in self.pumps if isinstance(p.table_function, ForestFunction)}  # fmt: skip

    # -- what the engine calls ---------------------------------------------------------------
    def new_state(self) -> Forests | None:
        """Fresh state for one engine: the RCF pumps' forests (None when there are none)."""
        functions = self.forest_functions
        return Forests(functions) if functions else None

    @staticmethod
    def parse_time_us(text: str) -> int:
        """The time field (ROWTIME) in µs: ISO-8601, an offset or `Z`, or none (KDA's TIMESTAMP
        has no time zone: read as UTC). ValueError for anything else (the record is dead-lettered)."""
        return (to_timestamp(text) - EPOCH) // dt.timedelta(microseconds=1)

    def prepare(self, event: dict[str, Any], t_us: int) -> dict[str, Any] | None:
        """A source record -> `{"__rows": [...]}` (rows per-row pumps bring to the output now) and,
        when it reaches the windowed pump, `{"__key": tuple, "__a0": ...}`; None when WHEREs drop it
        everywhere. RowError rejects it."""
        env = {c.name: c.read(event) for c in self.input_columns} if self.input_columns else dict(event)
        for name in self._folded:
            if name not in env:  # KDA's schema discovery named `$.page` PAGE: unquoted page reads it
                env[name] = event.get(name.lower())
        rowtime = EPOCH + dt.timedelta(microseconds=t_us)
        env[ROWTIME] = rowtime
        reaching: list[dict[str, Any]] = []
        rows = self._flow(SOURCE_STREAM, env, rowtime, reaching)
        prepared: dict[str, Any] = {"__rows": rows} if rows else {}
        grouped = self.grouped
        if reaching and grouped is not None and grouped.window is not None:
            window_env = reaching[0]
            if grouped.where is None or grouped.where(window_env):
                key, args = grouped.group_values(window_env)
                prepared["__key"] = key
                prepared.update((f"__a{i}", v) for i, v in enumerate(args))
                if grouped.window[0] == "sliding":
                    prepared["__row"] = window_env
        return prepared or None

    def _flow(self, stream: str, env: dict[str, Any], rowtime: dt.datetime,
              reaching: list[dict[str, Any]], forests: Forests | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """The output rows `env`, a row of `stream`, gives through the per-row pumps; the row that
        reaches the windowed pump's input is put in `reaching`. `forests`: the engine's RCF state
        (rows after the window only: compile_program refuses an RCF the source reaches)."""
        if stream == self._graph.output:
            return [self._typed(env)]
        out: list[dict[str, Any]] = []
        for pump in self._graph.readers.get(stream, []):
            if pump.window is not None:
                reaching.append(env)
                continue
            values = pump.row(env, forests)
            if values is not None:
                after = self._named(pump, values)
                after[ROWTIME] = rowtime
                out += self._flow(pump.statement.target, after, rowtime, reaching, forests)
        return out

    def rows(self, key: Any, start_us: int, end_us: int, results: list[Any],
             own: dict[str, Any] | None = None, state: Forests | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """The output rows of one closed window of the windowed pump (none when HAVING drops it);
        `own` is a sliding window's input row, `state` the engine's `new_state()`. ROWTIME after a
        window is the window's end."""
        grouped = self.grouped
        if grouped is None:
            return []
        rowtime = EPOCH + dt.timedelta(microseconds=end_us)
        out: list[dict[str, Any]] = []
        for values in grouped.grouped_rows(
            key if isinstance(key, tuple) else (), start_us, end_us, results, own
        ):
            env = self._named(grouped, values)
            env[ROWTIME] = rowtime
            out += self._flow(grouped.statement.target, env, rowtime, [], state)
        return out

    # -- helpers -----------------------------------------------------------------------------
    def target_columns(self, pump: PumpPlan) -> list[str]:
        stream = self.streams[pump.statement.target]
        return list(pump.statement.target_columns or [c.name for c in stream.columns])

    def _named(self, pump: PumpPlan, values: list[Any]) -> dict[str, Any]:
        return dict(zip(self.target_columns(pump), values, strict=True))

    def _typed(self, env: dict[str, Any]) -> dict[str, Any]:
        """The output row, each value as its declared column's type. A JSON value that is not of a
        number, BOOLEAN or TIMESTAMP column's type (`"8f4a..."` into INTEGER) rejects the record
        (RejectedRecord, dead-lettered naming the column), as KDA sent such rows to its error
        stream. Text columns take any value as text; their length is not enforced (docs/kda-sql.md)."""
        row = {}
        for column in self.output.columns:
            value = env.get(column.name)
            if isinstance(value, str | int | float) and column.type.category in _CHECKED_CATEGORIES:
                try:
                    value = column.type.coerce(value)
                except ValueError as exc:
                    msg = f'column "{column.name}" of {self.output.name} is {column.type.spelling}: {exc}'
                    raise RejectedRecord(msg) from exc
            row[column.name] = column.type.output(value)
        return row

    def explain(self) -> list[str]:
        """The plan in words: input, each pump (window, keys, aggregates, filters), the output."""
        lines = [
            f"input {SOURCE_STREAM}: {'columns ' + ', '.join(c.name for c in self.input_columns) if self.input_columns else 'the JSON fields of each record'}; ROWTIME = {self.time_field!r} (event time)"
        ]
        for pump in self.pumps:
            head = f"pump {pump.statement.name}: {pump.from_stream} -> {pump.statement.target}"
            if isinstance(pump.table_function, ForestFunction):
                f = pump.table_function
                lines.append(f"{head}, per row: {f.name} over {', '.join(f.numeric)} ({f.num_trees} trees, sub-sample {f.sub_sample}, shingle {f.shingle_size}) adds {', '.join(list(f.columns)[len(f.cursor):])}")  # fmt: skip
                continue
            if pump.window is None:
                lines.append(f"{head}, per row{' with WHERE' if pump.where else ''}")
                continue
            kind, size_us = pump.window
            if pump.rows_preceding is not None:
                kind, size_us = f"sliding ROWS {pump.rows_preceding} PRECEDING", 0
            elif kind == "sliding":
                kind = "sliding RANGE [t - range, t]"
            keys = ", ".join(k for k, _ in pump.keys) or "(none: one row per window)"
            aggs = ", ".join(a.sql for a in pump.aggregates) or "(none)"
            extra = "".join([" with WHERE" if pump.where else "", " and HAVING" if pump.having else ""])
            lines.append(
                f"{head}, {kind} window {size_us / 1_000_000:g}s{extra}; keys {keys}; aggregates {aggs}"
            )
        out = self.output
        lines.append(f"output {out.name}: " + ", ".join(f"{c.name} {c.type.spelling}" for c in out.columns))
        return lines


def program_settings(text: str) -> dict[str, str]:
    """The `-- tidelake: key = value` settings in a program's comments."""
    found = {key: value for key, value in _SETTING.findall(text)}
    unknown = sorted(set(found) - set(SETTINGS))
    if unknown:
        msg = f"program settings {unknown} are unknown; known: {', '.join(SETTINGS)}"
        raise ConfigError(msg)
    return found


def compile_program(source: SourceText, time_field: str | None = None,
                    input_columns: tuple[InputColumn, ...] = ()) -> Program:  # fmt: skip
    """Read, check and compile a program; SqlRefused (a ConfigError) names the line and column."""
    if source.text.startswith("\ufeff"):  # a byte-order mark is not part of the program
        source = SourceText(source.text[1:], source.name)
    if len(source.text) > MAX_PROGRAM_CHARS:
        raise source.refuse(
            MAX_PROGRAM_CHARS, f"the program has {len(source.text):,} characters, more than {MAX_PROGRAM_CHARS:,}",
            "KDA's application code is at most 102,400 characters (CreateApplication's ApplicationCode); split it into several apps",
        )  # fmt: skip
    settings = program_settings(source.text)
    time_field = time_field or settings.get("time_field") or "event_time"
    statements = parse_statements(source)
    streams: dict[str, StreamStatement] = {}
    pumps: list[PumpStatement] = []
    for statement in statements:
        if isinstance(statement, StreamStatement):
            if statement.name in (SOURCE_STREAM,):
                raise source.refuse(
                    statement.offset,
                    f"{SOURCE_STREAM} is the input",
                    "do not CREATE it; --source names its topic",
                )
            streams[statement.name] = statement
        else:
            pumps.append(statement)
    if not pumps:
        raise source.refuse(
            statements[-1].offset,
            "the program has no pump",
            "add CREATE OR REPLACE PUMP ... AS INSERT INTO ... SELECT STREAM ...",
        )
    for pump in pumps:
        if pump.target not in streams:
            raise source.refuse(pump.offset, f"pump {pump.name} inserts into {pump.target}, which no CREATE STREAM declares",
                                f'declare it: CREATE OR REPLACE STREAM "{pump.target}" (...)')  # fmt: skip
    writers = {pump.target for pump in pumps}
    input_names = {c.name: c.type.category for c in input_columns}
    plans = []
    for pump in pumps:
        try:
            plans.append(_compile_one(source, pump, streams, writers, time_field, input_names))
        except RecursionError:  # a safety net: check_nesting and check_depth refuse these first
            raise source.refuse(pump.offset, NESTED_TOO_DEEPLY, SPLIT_IT) from None
    graph = build_graph(source, plans)
    _check_forests_follow_the_window(source, plans, graph)
    return Program(source, streams, plans, time_field, input_columns, settings, graph)


def _compile_one(source: SourceText, pump: PumpStatement, streams: dict[str, StreamStatement],
                 writers: set[str], time_field: str, input_names: dict[str, str]) -> PumpPlan:  # fmt: skip
    def resolve(name: str, column: exp.Column) -> str:
        if not column.this.quoted:
            folded.append(name)
        return name

    folded: list[str] = []
    plan = compile_pump(source, pump, time_field, resolve, streams)
    if plan.from_stream == SOURCE_STREAM and not input_names:
        plan.folded_source_names = tuple(dict.fromkeys(n for n in folded if n != ROWTIME))
    base = pump.select_offset
    known: dict[str, str | None] | None
    if plan.from_stream == SOURCE_STREAM:
        known = dict(input_names) if input_names else None
    elif plan.from_stream in streams and plan.from_stream in writers:
        known = {c.name: c.type.category for c in streams[plan.from_stream].columns}
    else:
        raise source.refuse(pump.offset, f"pump {pump.name} reads {plan.from_stream}, which no pump fills",
                            f'read "{SOURCE_STREAM}" or a stream another pump inserts into')  # fmt: skip
    if plan.table_function is not None:  # the SELECT reads the function's columns, not the stream's
        known = dict(plan.table_function.columns)
    select = plan.select

    def category(name: str) -> str | None:
        if name in (ROWTIME, time_field):
            return "timestamp"
        return None if known is None else known.get(name)

    for _, _, node in select:
        for column in node.find_all(exp.Column):
            name = column.this.this if column.this.quoted else column.this.this.upper()
            if known is not None and name not in known and name not in (ROWTIME, time_field):
                raise source.refuse(base + node_offset(column), f"{plan.from_stream} has no column {name}",
                                    f"its columns are {', '.join(known)}" + ("" if column.this.quoted else "; quote a lower-case name: \"" + column.this.this + '"'))  # fmt: skip
    target = streams[pump.target]
    names = list(pump.target_columns or [c.name for c in target.columns])
    declared = {c.name: c for c in target.columns}
    for name in names:
        if name not in declared:
            raise source.refuse(
                pump.offset, f"{pump.target} has no column {name!r}", f"its columns are {', '.join(declared)}"
            )
    if len(names) != len(select):
        raise source.refuse(base, f"the SELECT gives {len(select)} columns and {pump.target} takes {len(names)} ({', '.join(names)})",
                            "select one item per column, in the stream's column order")  # fmt: skip
    for name, (_, _, node) in zip(names, select, strict=True):
        column_type = declared[name].type
        failing = failing_cast(node, category)
        if failing is not None:
            cast, to = failing
            inner = sql_of(cast.this)
            raise source.refuse(base + node_offset(cast), f"{sql_of(cast)} fails for every row: a TIMESTAMP is not {'a BOOLEAN' if to == 'boolean' else 'a number'}",
                                f"write UNIX_TIMESTAMP({inner}) (milliseconds since 1970-01-01) or make the column TIMESTAMP" if to != "boolean" else "compare the timestamp instead")  # fmt: skip
        found = infer(node, category)
        if not fits(column_type.category, found):
            raise source.refuse(base + node_offset(node), f'column "{name}" of {pump.target} is {column_type.spelling} but {sql_of(node)} gives {found}',
                                instead_of(column_type.spelling, column_type.category, str(found), sql_of(node)))  # fmt: skip
    return plan


def _check_forests_follow_the_window(source: SourceText, plans: list[PumpPlan], graph: PumpGraph) -> None:
    """An RCF pump scores rows in order, so it reads only rows of the windowed pump (which come in
    window order); rows read from the source come in no fixed order across partitions."""
    writers: dict[str, list[PumpPlan]] = {}
    for plan in plans:
        writers.setdefault(plan.statement.target, []).append(plan)

    known: dict[str, bool] = {}

    def after_window(stream: str) -> bool:
        """Every row of `stream` comes from the windowed pump: each stream is worked out once,
        with a stack instead of recursion (the graph has no cycle: build_graph refused them)."""
        stack = [stream]
        while stack:
            current = stack[-1]
            filled = writers.get(current, [])
            waiting = [p.from_stream for p in filled if p is not graph.grouped and p.from_stream not in known]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            known[current] = bool(filled) and all(p is graph.grouped or known[p.from_stream] for p in filled)
        return known[stream]

    for plan in plans:
        if isinstance(plan.table_function, ForestFunction) and not after_window(plan.from_stream):
            raise source.refuse(plan.statement.offset, f"{plan.table_function.name} in pump {plan.statement.name} reads {plan.from_stream}, whose rows do not all come from a windowed pump",
                                "count per window into an in-application stream first (GROUP BY STEP(ROWTIME BY INTERVAL '60' SECOND)) and score that stream; tidelake scores rows in window order, and source rows arrive in no fixed order across partitions")  # fmt: skip


def load_program(
    path: Path, time_field: str | None = None, input_columns: tuple[InputColumn, ...] = ()
) -> Program:
    """Read a `.sql` file and compile it (ConfigError names the file, line and column)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read KDA SQL program {path}: {exc.strerror}"
        raise ConfigError(msg) from exc
    return compile_program(SourceText(decode_program(data, str(path)), str(path)), time_field, input_columns)


def decode_program(data: bytes, name: str) -> str:
    """A program's bytes as UTF-8 text without a leading byte-order mark; bytes that are not UTF-8
    are refused with their byte offset (and line and column of the text before them)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        raise SourceText(before, name).refuse(
            len(before),
            f"byte {exc.start} (0x{data[exc.start]:02x}) is not UTF-8 text",
            "save the program as UTF-8",
        ) from exc


__all__ = ["DESTINATION_STREAM", "SOURCE_STREAM", "Program", "compile_program", "load_program"]
