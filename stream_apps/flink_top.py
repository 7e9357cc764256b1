"""`top:N:F` (the N most frequent values of F with their counts) as Flink SQL, in the engine's shape:
a JSON array of `{"F": value, "count": n}` objects, most frequent first, ties by value, NULLs not
counted, an empty array when F is NULL in every event of the window.

Four steps, each an append-only window operation (Flink SQL, "Window Top-N" and "Window
Aggregation", cascading): count the events per window, key and value; number them with
ROW_NUMBER() per window and key (NULL values last, then count descending, then value) and keep the
first N; fold those N rows into one row per window and key (the value and count at each rank, and
how many there are); window-join that row to the window's other aggregates. The row's array is the
N (value, count) pairs, sliced to the number of values that are not NULL.
"""

from __future__ import annotations

from collections.abc import Mapping

from stream_apps.aggregates import Aggregate
from stream_apps.flink_refusals import TWO_TOPS, refuse
from stream_apps.flink_sql import quote, table_names
from stream_apps.flink_windows import aggregate_sql, bounds, message_key, tvf
from stream_apps.spec import AppSpec


def top_query(spec: AppSpec, events: str, sink: str, types: Mapping[str, str],
              tops: list[Aggregate]) -> tuple[tuple[str, ...], str]:  # fmt: skip
    """(views, INSERT) of a windowed app with one top:N:F aggregate."""
    if len(tops) > 1:
        raise refuse(spec.name, f"{len(tops)} top:N:F aggregates", TWO_TOPS)
    top = tops[0]
    base = table_names(spec.name)[1].removesuffix("_events")
    main, counts, ranked, folded = (
        f"{base}_{part}" for part in ("windows", "top_counts", "top_ranked", "top")
    )
    key = quote(spec.key_field) if spec.key_field else None
    join_key = (f"CASE WHEN {key} IS NULL THEN '' ELSE CONCAT('=', CAST({key} AS STRING)) END AS `__jk`"
                if key else None)  # fmt: skip
    window = tvf(spec, events)
    start, end = bounds(spec)
    keyed = [key] if key else []
    group = ", ".join(["window_start", "window_end", *keyed])

    others = [(i, a) for i, a in enumerate(spec.aggregates) if a.kind != "top"]
    main_items = ["window_start", "window_end", *keyed, *([join_key] if join_key else [])]
    main_items += [f"{start} AS `__start`", f"{end} AS `__end`"]
    main_items += [f"{aggregate_sql(a, types)[0]} AS `__a{i}`" for i, a in others]
    main_view = _view(main, main_items, window, group)

    field = quote(str(top.field))
    count_items = ["window_start", "window_end", "window_time", *keyed, *([join_key] if join_key else [])]
    count_items += [f"{field} AS `__v`", f"CASE WHEN {field} IS NULL THEN 1 ELSE 0 END AS `__null`",
                    "COUNT(*) AS `__c`"]  # fmt: skip
    counts_view = _view(
        counts, count_items, window, f"window_start, window_end, window_time, {', '.join([*keyed, field])}"
    )

    partition = ", ".join(["window_start", "window_end", *keyed])
    ranked_view = (
        f"CREATE VIEW {quote(ranked)} AS\nSELECT * FROM (\n    SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition} "
        f"ORDER BY `__null`, `__c` DESC, `__v`) AS `__rank`\n    FROM {quote(counts)})\nWHERE `__rank` <= {top.n}"
    )
    fold_items = ["window_start", "window_end", *(["`__jk`"] if key else []), "COUNT(`__v`) AS `__n`"]
    for rank in range(1, top.n + 1):
        fold_items.append(f"MAX(CASE WHEN `__rank` = {rank} THEN `__v` END) AS `__v{rank}`")
        fold_items.append(f"MAX(CASE WHEN `__rank` = {rank} THEN `__c` END) AS `__c{rank}`")
    folded_view = _view(
        folded,
        fold_items,
        quote(ranked),
        ", ".join(["window_start", "window_end", *(["`__jk`"] if key else [])]),
    )

    pairs = ", ".join(f"ROW(t.`__v{rank}`, t.`__c{rank}`)" for rank in range(1, top.n + 1))
    items = [message_key(spec, f"m.{key}" if key else None, "m.`__start`", types)]
    items += [f"m.{key}"] if key else []
    items += ["m.`__start`", "m.`__end`"]
    for i, agg in enumerate(spec.aggregates):
        items.append(f"ARRAY_SLICE(ARRAY[{pairs}], 1, CAST(t.`__n` AS INT))" if agg is top else f"m.`__a{i}`")
    on = [
        "m.window_start = t.window_start",
        "m.window_end = t.window_end",
        *(["m.`__jk` = t.`__jk`"] if key else []),
    ]
    select = ",\n    ".join(items)
    insert = (
        f"INSERT INTO {quote(sink)}\nSELECT\n    {select}\nFROM {quote(main)} AS m\n"
        f"JOIN {quote(folded)} AS t ON {' AND '.join(on)}"
    )
    return (main_view, counts_view, ranked_view, folded_view), insert


def _view(name: str, items: list[str], from_: str, group: str) -> str:
    select = ",\n    ".join(items)
    return f"CREATE VIEW {quote(name)} AS\nSELECT\n    {select}\nFROM {from_}\nGROUP BY {group}"
