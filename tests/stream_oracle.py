"""The correctness oracle for stream apps: the rows DuckDB computes with the equivalent GROUP BY.

`expected_rows(events, spec)` takes the event dicts that went onto the source topic and an AppSpec
and returns the final rows the app must emit (same field names and formats), sorted by
`row_sort_key`. Windows are assigned in SQL (FLOOR arithmetic for tumbling/hopping, LAG islands for
sessions, a recursive CTE for stagger windows, a self-join for sliding windows).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa

from stream_apps.durations import format_time_us
from stream_apps.spec import AppSpec, Condition


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _condition_sql(condition: Condition) -> str:
    return f'"{condition.field}" {condition.op} {_literal(condition.value)}'


def _aggregate_sql(agg: Any, text_columns: set[str]) -> str:
    f = f'"{agg.field}"' if agg.field else None
    kind = agg.kind
    if agg.field in text_columns and kind in ("sum", "avg"):
        f = f"TRY_CAST({f} AS DOUBLE)"
    if kind == "count":
        return "count(*)"
    if kind == "count_distinct":
        return f"count(DISTINCT {f})"
    if kind in ("sum", "min", "max"):
        return f"{kind}({f})"
    if kind == "avg":
        return f"sum({f}) / count({f})"
    if kind == "first":
        return f"(min({{'t': t_us, 'v': {f}}}) FILTER (WHERE {f} IS NOT NULL)).v"
    if kind == "last":
        return f"(max({{'t': t_us, 'v': {f}}}) FILTER (WHERE {f} IS NOT NULL)).v"
    if kind == "duration":
        return "(max(t_us) - min(t_us)) / 1000000"
    if kind == "top":
        return "NULL"  # filled from a second query below
    raise AssertionError(kind)


def _assigned_sql(spec: AppSpec) -> str:
    """SQL of (k, ws, we, t_us, fields...): one row per (event, window it belongs to)."""
    window = spec.window
    size = window.size_us
    if window.kind == "tumbling":
        return f"SELECT *, t_us - (t_us % {size}) AS ws, t_us - (t_us % {size}) + {size} AS we FROM ev"
    if window.kind == "hopping":
        step = window.step_us
        return (
            f"SELECT * EXCLUDE (starts), starts AS ws, starts + {size} AS we FROM ("
            f"SELECT *, UNNEST(range(t_us - (t_us % {step}) - {size} + {step}, t_us - (t_us % {step}) + 1, {step}))"
            " AS starts FROM ev)"
        )
    if window.kind == "session":
        return (
            "SELECT *, min(t_us) OVER s AS ws, max(t_us) OVER s + "
            f"{size} AS we FROM (SELECT *, sum(new) OVER (PARTITION BY k ORDER BY t_us, rn "
            "ROWS UNBOUNDED PRECEDING) AS sid FROM (SELECT *, CASE WHEN t_us - lag(t_us) OVER "
            f"(PARTITION BY k ORDER BY t_us, rn) < {size} THEN 0 ELSE 1 END AS new FROM ev)) "
            "WINDOW s AS (PARTITION BY k, sid)"
        )
    if window.kind == "stagger":
        return (
            "WITH RECURSIVE o AS (SELECT *, row_number() OVER (PARTITION BY k ORDER BY t_us, rn) AS i FROM ev), "
            "r(k, i, ws) AS (SELECT k, i, t_us FROM o WHERE i = 1 UNION ALL SELECT o.k, o.i, "
            f"CASE WHEN o.t_us >= r.ws + {size} THEN o.t_us ELSE r.ws END FROM r JOIN o "
            "ON o.k IS NOT DISTINCT FROM r.k AND o.i = r.i + 1) "
            f"SELECT o.* EXCLUDE (i), r.ws, r.ws + {size} AS we FROM o JOIN r "
            "ON o.k IS NOT DISTINCT FROM r.k AND o.i = r.i"
        )
    # sliding: one window per distinct (key, time), holding that key's events in (t - size, t]
    return (
        f"SELECT e.*, w.t_us - {size} AS ws, w.t_us AS we FROM (SELECT DISTINCT k, t_us FROM ev) w "
        f"JOIN ev e ON e.k IS NOT DISTINCT FROM w.k AND e.t_us > w.t_us - {size} AND e.t_us <= w.t_us"
    )


def expected_rows(events: list[dict[str, Any]], spec: AppSpec) -> list[dict[str, Any]]:
    """The final rows DuckDB computes from `events` for `spec` (late events must not be among them)."""
    con = duckdb.connect()
    rows = [dict(e, __rn=i) for i, e in enumerate(events)]
    table = pa.Table.from_pylist(rows)  # noqa: F841  (read by DuckDB's replacement scan)
    key = f'"{spec.key_field}"' if spec.key_field else "NULL"
    where = " AND ".join(_condition_sql(c) for c in spec.filters) or "true"
    derived = "".join(
        f', CASE WHEN "{c.field}" IS NULL THEN NULL ELSE CAST({_condition_sql(c)} AS INTEGER) END AS "{name}"'
        for name, c in spec.derive
    )
    con.execute(
        f"CREATE TABLE ev AS SELECT *{derived}, {key} AS k, __rn AS rn, "
        f'epoch_us(CAST("{spec.time_field}" AS TIMESTAMPTZ)) AS t_us FROM "table" WHERE {where}'
    )
    text_columns = {name for name, kind, *_ in con.execute("DESCRIBE ev").fetchall() if kind == "VARCHAR"}
    aggs = ", ".join(f"{_aggregate_sql(a, text_columns)} AS a{i}" for i, a in enumerate(spec.aggregates))
    assigned = _assigned_sql(spec)
    con.execute(f"CREATE TABLE assigned AS {assigned}")
    result = con.execute(f"SELECT k, ws, we, {aggs} FROM assigned GROUP BY k, ws, we").fetchall()
    tops: dict[tuple[Any, int, int], dict[int, list[dict[str, Any]]]] = {}
    for i, agg in enumerate(spec.aggregates):
        if agg.kind != "top":
            continue
        ranked = con.execute(
            f'SELECT k, ws, we, "{agg.field}", c FROM (SELECT k, ws, we, "{agg.field}", count(*) AS c, '
            f'row_number() OVER (PARTITION BY k, ws, we ORDER BY count(*) DESC, "{agg.field}") AS r '
            f'FROM assigned WHERE "{agg.field}" IS NOT NULL GROUP BY k, ws, we, "{agg.field}") '
            f"WHERE r <= {agg.n} ORDER BY k, ws, we, r"
        ).fetchall()
        for k, ws, we, value, count in ranked:
            tops.setdefault((k, ws, we), {}).setdefault(i, []).append({str(agg.field): value, "count": count})
    out = []
    for k, ws, we, *values in result:
        row: dict[str, Any] = {}
        if spec.key_field:
            row[spec.key_field] = k
        row["window_start"], row["window_end"] = format_time_us(ws), format_time_us(we)
        for i, (agg, value) in enumerate(zip(spec.aggregates, values, strict=True)):
            if agg.kind == "top":
                value = tops.get((k, ws, we), {}).get(i, [])
            row[agg.output_name] = value
        out.append(json.loads(json.dumps(row)))
    return sorted(out, key=row_sort_key)


def row_sort_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def last_per_window(rows: list[dict[str, Any]], spec: AppSpec) -> list[dict[str, Any]]:
    """What a consumer keeps: the last row per (key, window_start), sorted like `expected_rows`."""
    kept: dict[tuple[Any, str], dict[str, Any]] = {}
    for row in rows:
        kept[(row.get(spec.key_field) if spec.key_field else None, row["window_start"])] = row
    return sorted(kept.values(), key=row_sort_key)
