"""A TOML spec's windows and aggregates as Flink SQL: the events view and the INSERT.

Windows (Flink SQL's window table-valued functions and OVER windows, docs/flink.md's table):
tumbling -> TUMBLE, hopping -> HOP, session -> SESSION partitioned by the key, sliding -> an OVER
window per key (RANGE of the size less 1 ms, since tidelake's sliding window holds `(t - size, t]`
and Flink's RANGE holds `[t - size, t]`). Stagger windows, RANDOM_CUT_FOREST and emit = "changes"
are refused (stream_apps/flink_refusals.py).

Rows: the key field, `window_start` and `window_end` as text in core.events' format, then each
aggregate under its output name; the message key is `KEY|window_start` (the key empty when the
app has none), as stream_apps/engine.py writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream_apps.aggregates import Aggregate
from stream_apps.flink_refusals import ANOMALY, EMIT_CHANGES, SLIDING_TOP, STAGGER, refuse
from stream_apps.flink_sql import EVENT_TIME, MICROS, ROWTIME, check_ms, formatted, interval, literal, quote
from stream_apps.spec import AppSpec, Condition

_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_INTEGRAL = ("TINYINT", "SMALLINT", "INT", "BIGINT")
#: A sortable text of the event time (fixed width), put before a value so that MIN/MAX of the pair
#: gives the value at the earliest/latest event time (ties broken by the value, as tidelake does).
_TIME_KEY_WIDTH = 26


@dataclass(frozen=True)
class Query:
    """What the script needs from a compiled app besides its tables' connectors."""

    source_columns: dict[str, str]
    views: tuple[str, ...]
    sink_columns: dict[str, str]
    insert: str


def value_literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return literal(str(value))


def condition_sql(condition: Condition) -> str:
    return f"{quote(condition.field)} {_OPS[condition.op]} {value_literal(condition.value)}"


def key_text(expr: str, kind: str) -> str:
    """The key as Python's str() writes it in the message key (`True`, not Flink's `TRUE`)."""
    if kind == "BOOLEAN":
        return f"CASE WHEN {expr} THEN 'True' WHEN NOT {expr} THEN 'False' ELSE '' END"
    return f"COALESCE(CAST({expr} AS STRING), '')"


def refuse_unsupported(spec: AppSpec) -> None:
    if spec.anomaly:
        raise refuse(spec.name, "the anomaly score ([anomaly], a random cut forest)", ANOMALY)
    if spec.window.kind == "stagger":
        raise refuse(spec.name, f"window = {spec.window.spelling!r} (a stagger window)", STAGGER)
    if spec.emit == "changes":
        raise refuse(spec.name, 'emit = "changes"', EMIT_CHANGES)
    window = spec.window
    check_ms(spec.name, "the window", window.size_us, window.spelling)
    check_ms(spec.name, "the window", window.step_us, window.spelling)


def aggregate_sql(agg: Aggregate, types: Mapping[str, str]) -> tuple[str, str]:
    """(Flink SQL over one window's rows, output type) of an aggregate other than top."""
    kind = agg.kind
    if kind == "count":
        return "COUNT(*)", "BIGINT"
    if kind == "duration":
        us = quote(MICROS)
        return f"CAST(MAX({us}) - MIN({us}) AS DOUBLE) / 1000000", "DOUBLE"
    field = quote(str(agg.field))
    kind_of = types.get(str(agg.field), "STRING")
    if kind == "count_distinct":
        return f"COUNT(DISTINCT {field})", "BIGINT"
    if kind == "sum":
        to = "BIGINT" if kind_of in _INTEGRAL or kind_of == "BOOLEAN" else "DOUBLE"
        return f"SUM(TRY_CAST({field} AS {to}))", to
    if kind == "avg":
        return f"AVG(TRY_CAST({field} AS DOUBLE))", "DOUBLE"
    if kind in ("min", "max"):
        return f"{kind.upper()}({field})", kind_of
    if kind in ("first", "last"):
        pick = "MIN" if kind == "first" else "MAX"
        time_key = f"DATE_FORMAT({quote(EVENT_TIME)}, 'yyyy-MM-dd HH:mm:ss.SSSSSS')"
        text = f"SUBSTRING({pick}(CONCAT({time_key}, CAST({field} AS STRING))) FROM {_TIME_KEY_WIDTH + 1})"
        return (text if kind_of == "STRING" else f"CAST({text} AS {kind_of})"), kind_of
    raise AssertionError(kind)  # top: stream_apps/flink_top.py


def compile_query(spec: AppSpec, *, source: str, events: str, sink: str, types: Mapping[str, str]) -> Query:
    """The views and the INSERT of a TOML spec (FlinkUnsupported for what cannot run)."""
    refuse_unsupported(spec)
    derived = [
        f"CASE WHEN {quote(c.field)} IS NULL THEN CAST(NULL AS INT) WHEN {condition_sql(c)} THEN 1 ELSE 0 END "
        f"AS {quote(name)}"
        for name, c in spec.derive
    ]
    all_types = dict(types)
    all_types.update((name, "INT") for name, _ in spec.derive)
    where = " AND ".join([f"{quote(ROWTIME)} IS NOT NULL", *(condition_sql(c) for c in spec.filters)])
    columns = [quote(ROWTIME), quote(EVENT_TIME)]
    if any(a.kind == "duration" for a in spec.aggregates):
        columns.append(f"{micros(quote(EVENT_TIME))} AS {quote(MICROS)}")
    columns += [*(quote(f) for f in types), *derived]
    view = f"CREATE VIEW {quote(events)} AS\nSELECT {', '.join(columns)}\nFROM {quote(source)}\nWHERE {where}"
    key = spec.key_field
    sink_columns: dict[str, str] = {}
    if key:
        sink_columns[key] = all_types.get(key, "STRING")
    sink_columns["window_start"] = "STRING"
    sink_columns["window_end"] = "STRING"
    for agg in spec.aggregates:
        sink_columns[agg.output_name] = (
            top_type(agg, all_types) if agg.kind == "top" else aggregate_sql(agg, all_types)[1]
        )
    if spec.window.kind == "sliding":
        return Query(dict(types), (view,), sink_columns, _sliding_insert(spec, events, sink, all_types))
    tops = [a for a in spec.aggregates if a.kind == "top"]
    if tops:
        from stream_apps.flink_top import top_query

        views, insert = top_query(spec, events, sink, all_types, tops)
        return Query(dict(types), (view, *views), sink_columns, insert)
    return Query(dict(types), (view,), sink_columns, _windowed_insert(spec, events, sink, all_types))


def micros(ts: str) -> str:
    """Microseconds since 1970 (UTC) of a TIMESTAMP(6), as a BIGINT."""
    return (f"UNIX_TIMESTAMP(DATE_FORMAT({ts}, 'yyyy-MM-dd HH:mm:ss')) * 1000000 + "
            f"CAST(DATE_FORMAT({ts}, 'SSSSSS') AS BIGINT)")  # fmt: skip


def tvf(spec: AppSpec, events: str) -> str:
    """The window table-valued function over the events view."""
    window, t = spec.window, f"DESCRIPTOR({quote(ROWTIME)})"
    table = f"TABLE {quote(events)}"
    if window.kind == "tumbling":
        return f"TABLE(TUMBLE({table}, {t}, {interval(window.size_us)}))"
    if window.kind == "hopping":
        return f"TABLE(HOP({table}, {t}, {interval(window.step_us)}, {interval(window.size_us)}))"
    partition = f" PARTITION BY {quote(spec.key_field)}" if spec.key_field else ""
    # Flink merges two sessions whose windows touch (`[t1, t1 + gap)` and `[t2, ...)` with t2 = t1 +
    # gap); tidelake's session ends when the next event is a whole gap later: a gap 1 ms shorter.
    return f"TABLE(SESSION({table}{partition}, {t}, {interval(window.size_us - 1000)}))"


def bounds(spec: AppSpec) -> tuple[str, str]:
    """(window_start, window_end) as the row's text. A session's are its first event's time and its
    last one's plus the gap, to the microsecond (Flink's window_start/window_end count milliseconds)."""
    if spec.window.kind == "session":
        ts = quote(EVENT_TIME)
        return formatted(f"MIN({ts})"), formatted(f"MAX({ts}) + {interval(spec.window.size_us)}")
    return formatted("window_start"), formatted("window_end")


def message_key(spec: AppSpec, key_expr: str | None, start: str, types: Mapping[str, str]) -> str:
    """`KEY|window_start`, the message key stream_apps/engine.py writes."""
    key = key_text(key_expr, types.get(str(spec.key_field), "STRING")) if key_expr else "''"
    return f"CONCAT({key}, '|', {start})"


def _windowed_insert(spec: AppSpec, events: str, sink: str, types: Mapping[str, str]) -> str:
    key = quote(spec.key_field) if spec.key_field else None
    group = ["window_start", "window_end", *([key] if key else [])]
    start, end = bounds(spec)
    items = [message_key(spec, key, start, types), *([key] if key else []), start, end]
    items += [aggregate_sql(agg, types)[0] for agg in spec.aggregates]
    select = ",\n    ".join(items)
    return f"INSERT INTO {quote(sink)}\nSELECT\n    {select}\nFROM {tvf(spec, events)}\nGROUP BY {', '.join(group)}"


def top_type(agg: Aggregate, types: Mapping[str, str]) -> str:
    return f"ARRAY<ROW<{quote(str(agg.field))} {types.get(str(agg.field), 'STRING')}, `count` BIGINT>>"


def _sliding_insert(spec: AppSpec, events: str, sink: str, types: Mapping[str, str]) -> str:
    """One row per event: its key's events in `(t - size, t]`, by an OVER window."""
    if any(a.kind == "top" for a in spec.aggregates):
        raise refuse(spec.name, "top:N:F over a sliding window", SLIDING_TOP)
    t, ts = quote(ROWTIME), quote(EVENT_TIME)
    key = quote(spec.key_field) if spec.key_field else None
    partition = f"PARTITION BY {key} " if key else ""
    start = formatted(f"{ts} - {interval(spec.window.size_us)}")
    items = [message_key(spec, key, start, types), *([key] if key else []), start, formatted(ts)]
    items += [f"{aggregate_sql(agg, types)[0]} OVER w" for agg in spec.aggregates]
    select = ",\n    ".join(items)
    size = interval(spec.window.size_us - 1000)
    return (
        f"INSERT INTO {quote(sink)}\nSELECT\n    {select}\nFROM {quote(events)}\n"
        f"WINDOW w AS ({partition}ORDER BY {t} RANGE BETWEEN {size} PRECEDING AND CURRENT ROW)"
    )
