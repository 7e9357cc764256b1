"""KDA SQL's RANDOM_CUT_FOREST[_WITH_EXPLANATION] (AWS, KDA SQL Reference) on the window engine over
fixed events and UTC times (no Kafka): parse, compile, evaluate; the spike gets the top score,
scores reproduce, survive a snapshot and restore, and page-view-anomalies.sql equals its TOML."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from typing import Any

import pytest

from stream_apps.anomaly import AnomalyScorer, make_row_hook
from stream_apps.catalog import shipped_specs, shipped_sql
from stream_apps.engine import WindowEngine
from stream_apps.kda_sql.apps import sql_app_spec
from stream_apps.kda_sql.program import compile_program
from stream_apps.kda_sql.refusals import SourceText, SqlRefused
from stream_apps.records import Record
from stream_apps.spec import AppSpec
from tests.stream_events import clickstream
from tests.stream_oracle import expected_rows, row_sort_key
from tests.unit.test_kda_sql_engine import run_spec, sql_spec

T0 = dt.datetime(2026, 1, 27, 10, 0, tzinfo=dt.UTC)
PER_MINUTE = """
CREATE OR REPLACE STREAM "PER_MINUTE" ("minute" TIMESTAMP, "views" BIGINT, "kb" DOUBLE, "note" VARCHAR(8));
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("minute" TIMESTAMP, "views" BIGINT, "kb" DOUBLE,
    "score" DOUBLE{extra});
CREATE OR REPLACE PUMP "COUNT_PUMP" AS INSERT INTO "PER_MINUTE"
    SELECT STREAM STEP(ROWTIME BY INTERVAL '60' SECOND), COUNT(*), SUM("bytes") / 1000.0, 'x'
    FROM "SOURCE_SQL_STREAM_001" GROUP BY STEP(ROWTIME BY INTERVAL '60' SECOND);
CREATE OR REPLACE PUMP "SCORE_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "minute", "views", "kb", ANOMALY_SCORE{extra_item}
    FROM TABLE({function}(CURSOR(SELECT STREAM * FROM "PER_MINUTE"), {args}));
"""


def program(function: str = "RANDOM_CUT_FOREST", args: str = "30, 64, 100000, 1") -> str:
    explained = function.endswith("EXPLANATION")
    return PER_MINUTE.format(
        function=function,
        args=args,
        extra=', "why" VARCHAR(1024)' if explained else "",
        extra_item=", ANOMALY_EXPLANATION" if explained else "",
    )


def minutes(views: list[int], kb_each: list[float] | None = None) -> list[dict[str, Any]]:
    """`views[m]` events in minute m from T0, every one of `kb_each[m]` kB (default 1)."""
    events = []
    for m, n in enumerate(views):
        for i in range(n):
            moment = T0 + dt.timedelta(minutes=m, seconds=i * 50 / n)
            kb = kb_each[m] if kb_each else 1.0
            events.append(
                {"event_time": moment.isoformat(), "bytes": int(kb * 1000), "visitor_id": f"v{i % 3}"}
            )
    return events


def run_one_partition(spec: AppSpec, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    engine = WindowEngine(spec, [0], now_s=0.0)
    records = [Record(i, None, json.dumps(e).encode()) for i, e in enumerate(events)]
    for i in range(0, len(records), 7):
        engine.process(0, records[i : i + 7], now_s=1.0)
        engine.advance(1.0)
    engine.advance(1_000.0)
    return [json.loads(v) for _, v in engine.outbox.rows]


VIEWS = [10 + m % 3 for m in range(40)]
VIEWS[30] = 60


def test_the_spike_minute_gets_the_top_score_and_scores_reproduce() -> None:
    spec = sql_spec(program())
    events = minutes(VIEWS)
    rows = run_one_partition(spec, events)
    assert [r["views"] for r in rows] == VIEWS
    assert [r["minute"] for r in rows[:2]] == ["2026-01-27T10:00:00.000000Z", "2026-01-27T10:01:00.000000Z"]
    scores = [r["score"] for r in rows]
    assert max(range(len(scores)), key=scores.__getitem__) == 30
    assert scores[0] == 0.0  # a lone point in the forest displaces nothing
    assert scores[30] > 3 * sorted(scores)[-2] / 2
    again = run_spec(sql_spec(program()), events, partitions=4)[0]  # fresh forests, another interleaving
    assert again == rows


def test_explanation_gives_attribution_strength_direction_per_numeric_column() -> None:
    kb = [2.0] * 40
    kb[25] = 40.0  # the kB per event spikes in minute 25, the number of views does not
    views = [10] * 40
    sql = program("RANDOM_CUT_FOREST_WITH_EXPLANATION", "30, 64, 100000, 1, true")
    rows = run_one_partition(sql_spec(sql), minutes(views, kb))
    scores = [r["score"] for r in rows]
    assert max(range(len(scores)), key=scores.__getitem__) == 25
    why = [json.loads(r["why"]) for r in rows]
    assert all(list(w) == ["views", "kb"] for w in why)  # the numeric columns, in cursor order; not "note"
    assert all(
        set(item) == {"ATTRIBUTION_SCORE", "STRENGTH", "DIRECTION"} for w in why for item in w.values()
    )
    spike = why[25]
    assert (spike["kb"]["DIRECTION"], spike["views"]["DIRECTION"]) == ("HIGH", "HIGH")  # views equal the mean
    assert float(spike["views"]["ATTRIBUTION_SCORE"]) == 0.0  # every deciding cut split kb
    assert float(spike["kb"]["ATTRIBUTION_SCORE"]) == pytest.approx(scores[25], abs=1e-4)
    assert float(spike["kb"]["STRENGTH"]) > 0.9 and float(spike["views"]["STRENGTH"]) == 0.0
    assert why[0]["kb"] == {"ATTRIBUTION_SCORE": "0.0000", "STRENGTH": "0.0000", "DIRECTION": "HIGH"}
    for w, score in zip(why, scores, strict=True):  # attributions sum to the score (AWS's rule)
        assert sum(float(item["ATTRIBUTION_SCORE"]) for item in w.values()) == pytest.approx(score, abs=2e-4)
    plain = run_one_partition(sql_spec(program("RANDOM_CUT_FOREST_WITH_EXPLANATION")), minutes(views, kb))
    assert json.loads(plain[25]["why"]) == {
        "views": {"ATTRIBUTION_SCORE": "0.0000"},
        "kb": {"ATTRIBUTION_SCORE": spike["kb"]["ATTRIBUTION_SCORE"]},
    }  # without directionality: the attribution only; the same forest gives the same score


def test_a_restored_engine_scores_as_an_uninterrupted_one() -> None:
    """A sub-sample of 10 rebuilds the forest every 10 rows: the restore rebuilds and replays it."""
    spec = sql_spec(program(args="20, 10, 100000, 2"))
    events = minutes(VIEWS)
    whole = run_one_partition(spec, events)
    records = [Record(i, None, json.dumps(e).encode()) for i, e in enumerate(events)]
    for cut in (301, 397):  # in the minutes of rows 24 and 32: 4 and 2 inserts after the last rebuild
        engine = WindowEngine(spec, [0], now_s=0.0)
        engine.process(0, records[:cut], 1.0)
        engine.advance(1.0)
        state = pickle.loads(pickle.dumps(engine.snapshot()))
        assert set(state["program"]) == {"SCORE_PUMP"}
        restored = WindowEngine(spec, [0], now_s=50.0)
        restored.restore(state)
        restored.process(0, records[restored.offsets[0] :], 51.0)
        restored.advance(1_000.0)
        assert 0 < len(engine.outbox.rows) < len(whole)
        assert [json.loads(v) for _, v in restored.outbox.rows] == whole  # the outbox is in the snapshot


def test_page_view_anomalies_sql_gives_the_toml_apps_rows_scores_included() -> None:
    events = clickstream(2400, seed=9)
    for event in events[1200:1500]:  # a burst: 300 more views in the minutes of events 1200-1500
        events.append(dict(event, event_id=event["event_id"] + "b"))
    events.sort(key=lambda e: e["event_time"])
    toml = shipped_specs()["page-view-anomalies"]
    sql = sql_app_spec(shipped_sql()["page-view-anomalies"])
    assert (sql.window, sql.allowed_lateness_us, sql.idle_timeout_us) == (toml.window, 5_000_000, 10_000_000)
    rows, engine = run_spec(sql, events)
    hook = make_row_hook(toml)
    assert isinstance(hook, AnomalyScorer) and hook.forest.num_trees == 40
    toml_engine = WindowEngine(toml, [0], 0.0, row_hook=hook)
    for i in range(0, len(events), 50):
        part = events[i : i + 50]
        toml_engine.process(0, [Record(i + j, None, json.dumps(e).encode()) for j, e in enumerate(part)], 1.0)
        toml_engine.advance(1.0)
    toml_engine.advance(1_000.0)
    toml_rows = [json.loads(v) for _, v in toml_engine.outbox.rows]
    assert rows == toml_rows
    counts = [{k: v for k, v in r.items() if k != "anomaly_score"} for r in rows]
    assert sorted(counts, key=row_sort_key) == expected_rows(events, toml)  # DuckDB's counts
    scores = [r["anomaly_score"] for r in rows]
    assert scores[:3] == [0.0, 0.0, 0.0]  # the shingle of 4 counts is not whole yet
    burst = {r["window_start"][11:16] for r in rows if r["count"] > 45}
    top = max(rows, key=lambda r: r["anomaly_score"])
    assert top["window_start"][11:16] in burst
    assert engine.counters.windows_closed == len(rows)


REFUSALS = [
    (program(args="0, 64, 100000, 1"), "numberOfTrees is a whole number from 1 to 1000", "0, 64"),
    (program(args="30, 5, 100000, 1"), "subSampleSize is a whole number from 10 to 1000", "5, 1"),
    (program(args="30, 64, 100000"), "RANDOM_CUT_FOREST takes a CURSOR and, optionally", "TABLE("),
    (program("RANDOM_CUT_FOREST_WITH_EXPLANATION", "30, 64, 100000, 1, 'yes'"), "withDirectionality is true or false", "'yes'"),
    (program().replace('SELECT STREAM * FROM "PER_MINUTE"', 'SELECT STREAM "minute", "note" FROM "PER_MINUTE"'),
     "the CURSOR has no numeric column", '"minute", "note"'),
    (program().replace('CURSOR(SELECT STREAM * FROM "PER_MINUTE")', 'CURSOR(SELECT STREAM "nope" FROM "PER_MINUTE")'),
     "PER_MINUTE has no column nope", '"nope"'),
    (program().replace('ANOMALY_SCORE', 'ANOMALY_EXPLANATION'), "RANDOM_CUT_FOREST has no column ANOMALY_EXPLANATION", "ANOMALY_EXPLANATION"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "message", "at"), REFUSALS)
def test_bad_forest_calls_are_refused_with_line_column_and_what_to_write(
    sql: str, message: str, at: str
) -> None:
    with pytest.raises(SqlRefused) as caught:
        compile_program(SourceText(sql, "app.sql"))
    error = caught.value
    assert message in str(error)
    assert "; write" in str(error) or "; select" in str(error) or "; its columns" in str(error)
    assert sql.splitlines()[error.line - 1][error.col - 1 :].startswith(at), str(error)


def test_a_forest_over_rows_that_do_not_come_from_the_window_is_refused() -> None:
    sql = """
    CREATE OR REPLACE STREAM "CLEAN" ("kb" DOUBLE);
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("kb" DOUBLE, "score" DOUBLE);
    CREATE OR REPLACE PUMP "CLEAN_PUMP" AS INSERT INTO "CLEAN"
        SELECT STREAM "bytes" / 1000.0 FROM "SOURCE_SQL_STREAM_001";
    CREATE OR REPLACE PUMP "SCORE_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
        SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "CLEAN")));
    """
    with pytest.raises(SqlRefused) as caught:
        compile_program(SourceText(sql, "app.sql"))
    assert (caught.value.line, caught.value.col) == (6, 5)
    assert (
        "RANDOM_CUT_FOREST in pump SCORE_PUMP reads CLEAN, whose rows do not all come from a windowed pump"
        in str(caught.value)
    )


def test_explain_names_the_forest_its_columns_and_parameters() -> None:
    lines = compile_program(SourceText(program(), "app.sql")).explain()
    assert lines[2] == (
        "pump SCORE_PUMP: PER_MINUTE -> DESTINATION_SQL_STREAM, per row: RANDOM_CUT_FOREST over views, kb"
        " (30 trees, sub-sample 64, shingle 1) adds ANOMALY_SCORE"
    )
    defaults = compile_program(
        SourceText(program(args="100, 256, 100000, 1").replace(", 100, 256, 100000, 1", ""), "app.sql")
    )
    function = defaults.forest_functions["SCORE_PUMP"]
    assert (function.num_trees, function.sub_sample, function.time_decay, function.shingle_size) == (
        100,
        256,
        100_000,
        1,
    )
