"""KDA SQL programs built to break the compiler (deep nesting, long expressions, big pump graphs,
bytes that are not UTF-8) are refused with their position, never a traceback, and compile in time
linear in their size; a window row a program cannot compute goes to the DLQ, not a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from stream_apps.kda_sql.apps import program_spec
from stream_apps.kda_sql.dialect import MAX_EXPRESSION_DEPTH
from stream_apps.kda_sql.program import MAX_PROGRAM_CHARS, compile_program, load_program
from stream_apps.kda_sql.refusals import SourceText, SqlRefused
from stream_apps.kda_sql.statements import MAX_NESTING
from tests.unit.test_kda_sql_engine import run_spec

HEAD = 'CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64), "n" BIGINT);\n'
PUMP = 'CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM "page", '
NESTED = "nested too deeply; at most 32 levels of parentheses, CASE and NOT; compute a part in a pump of its own into an in-application stream and read that stream"  # fmt: skip


def refusal(sql: str) -> str:
    with pytest.raises(SqlRefused) as caught:
        compile_program(SourceText(sql, "app.sql"))
    return str(caught.value)


def per_row(expression: str, where: str = "") -> str:
    return HEAD + PUMP + expression + ' FROM "SOURCE_SQL_STREAM_001"' + where + ";\n"


# -- 1. nesting: a refusal at the token past the limit, before sqlglot recurses ------------------
def test_nesting_limit_is_32() -> None:
    assert MAX_NESTING == 32
    assert MAX_EXPRESSION_DEPTH == 256


@pytest.mark.parametrize(
    ("expression", "where", "column"),
    [
        ("(" * 50 + "1" + ")" * 50, "", len(PUMP) + 33),  # the 33rd parenthesis
        ("(" * 32 + "1" + ")" * 32, "", None),  # 32 levels compile
        ("1", " WHERE " + "NOT " * 5000 + "TRUE", len(PUMP) + len('1 FROM "SOURCE_SQL_STREAM_001" WHERE ') + 4 * 32 + 1),
        ("CASE WHEN TRUE THEN " * 500 + "1" + " END" * 500, "", len(PUMP) + 20 * 32 + 1),
        ("CAST(" * 800 + "1" + " AS BIGINT)" * 800, "", len(PUMP) + 5 * 32 + 5),
    ],
)  # fmt: skip
def test_deep_nesting_is_refused_at_the_token_past_the_limit(
    expression: str, where: str, column: int | None
) -> None:
    sql = per_row(expression, where)
    if column is None:
        assert compile_program(SourceText(sql, "app.sql")).output.name == "DESTINATION_SQL_STREAM"
        return
    assert refusal(sql) == f"app.sql:2:{column}: {NESTED}"


def test_nested_in_select_200_deep_is_refused() -> None:
    inner = '"page"'
    for _ in range(200):
        inner = f'"page" IN (SELECT STREAM "page" FROM "SOURCE_SQL_STREAM_001" WHERE {inner})'
    message = refusal(per_row("1", " WHERE " + inner))
    assert message.startswith("app.sql:2:") and message.endswith(NESTED)


@pytest.mark.parametrize("terms", [300, 1000])
def test_a_sum_of_300_or_1000_terms_is_refused_as_too_deep_at_its_item(terms: int) -> None:
    message = refusal(per_row("+".join(["1"] * terms)))
    assert message == (
        f"app.sql:2:{len(PUMP) + 1}: this SELECT is nested too deeply; at most 256 levels of operators and functions; "
        "compute a part in a pump of its own into an in-application stream and read that stream"
    )


def test_a_sum_of_250_terms_compiles_and_computes() -> None:
    sql = per_row("+".join(["1"] * 250))
    rows, _ = run_spec(program_spec(compile_program(SourceText(sql)), "t", source="in", sink_topic="out"),
                       [{"event_time": "2026-01-27T10:00:01Z", "page": "/a"}], partitions=1)  # fmt: skip
    assert rows == [{"page": "/a", "n": 250}]


def chain(streams: int, fan: int) -> str:
    """`streams` in-application streams in a row, each filled by `fan` pumps from the one before."""
    names = [f"S{i}" for i in range(1, streams)] + ["DESTINATION_SQL_STREAM"]
    lines = [f'CREATE OR REPLACE STREAM "{s}" ("page" VARCHAR(64));' for s in names]
    before = "SOURCE_SQL_STREAM_001"
    for i, name in enumerate(names):
        lines += [f'CREATE OR REPLACE PUMP "P{i}_{f}" AS INSERT INTO "{name}" SELECT STREAM "page" FROM "{before}";'
                  for f in range(fan)]  # fmt: skip
        before = name
    return "\n".join(lines) + "\n"


def test_a_chain_of_600_pumps_compiles_without_recursion() -> None:
    program = compile_program(SourceText(chain(600, 1)))
    assert len(program.pumps) == 600
    assert program._graph.visits == 600
    assert program.output.name == "DESTINATION_SQL_STREAM"


# -- 2. the pump graph: each pump followed once -------------------------------------------------
def test_a_30_level_fan_in_follows_each_pump_once() -> None:
    program = compile_program(SourceText(chain(30, 2)))
    assert len(program.pumps) == 60
    assert program._graph.visits == 60  # following every path: 2 + 4 + ... + 2**30


def test_cycles_and_a_window_fed_by_two_paths_are_still_refused_exactly() -> None:
    cycle = """CREATE OR REPLACE STREAM "A" ("page" VARCHAR(64));
CREATE OR REPLACE STREAM "B" ("page" VARCHAR(64));
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64));
CREATE OR REPLACE PUMP "P0" AS INSERT INTO "A" SELECT STREAM "page" FROM "SOURCE_SQL_STREAM_001";
CREATE OR REPLACE PUMP "PAB" AS INSERT INTO "B" SELECT STREAM "page" FROM "A";
CREATE OR REPLACE PUMP "PBA" AS INSERT INTO "A" SELECT STREAM "page" FROM "B";
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM "page" FROM "B";
"""
    assert refusal(cycle) == (
        "app.sql:6:1: pump PBA closes a cycle through A; pumps flow from the input stream to an output stream, never back"
    )
    windowed = (
        chain(3, 2)
        .replace(
            'CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64));',
            'CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64), "n" BIGINT);',
        )
        .replace(
            'SELECT STREAM "page" FROM "S2";',
            'SELECT STREAM "page", COUNT(*) FROM "S2" GROUP BY "page", STEP(ROWTIME BY INTERVAL \'1\' MINUTE);',
            1,
        )
    )
    windowed = windowed.replace(
        'CREATE OR REPLACE PUMP "P2_1" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM "page" FROM "S2";\n',
        "",
    )
    assert refusal(windowed) == (
        "app.sql:8:1: the windowed pump P2_0 reads S2, which several pumps fill; "
        "give the window one path from the input (one pump into each stream before it)"
    )


# -- 3. long expressions and the program's size -------------------------------------------------
def test_grouped_substitutions_match_by_structure() -> None:
    sql = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("k" BIGINT, "n" BIGINT, "m" BIGINT);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM "a" + "b", COUNT(*) + SUM("a" + "b"), SUM("a" + "b") FROM "SOURCE_SQL_STREAM_001"
  GROUP BY "a" + "b", STEP(ROWTIME BY INTERVAL '1' MINUTE);
"""
    events = [{"event_time": f"2026-01-27T10:00:0{i}Z", "a": i, "b": 1} for i in (1, 2)]
    events.append({"event_time": "2026-01-27T10:00:05Z", "a": 2, "b": 0})
    rows, _ = run_spec(program_spec(compile_program(SourceText(sql)), "t", source="in", sink_topic="out"),
                       events, partitions=1)  # fmt: skip
    assert sorted(rows, key=lambda r: r["k"]) == [{"k": 2, "n": 6, "m": 4}, {"k": 3, "n": 4, "m": 3}]
    program = compile_program(SourceText(sql))
    assert len(program.grouped.aggregates) == 2  # type: ignore[union-attr]  # COUNT(*), SUM(a + b) once


def test_compiling_renders_sql_a_fixed_number_of_times_however_long_the_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Matching GROUP BY items once rendered every node's SQL (quadratic: 1000 terms took 16 s);
    now the count of renderings does not grow with the expression."""
    calls: list[int] = []
    render = exp.Expression.sql

    def counting(self: exp.Expression, *args: Any, **kwargs: Any) -> str:
        calls.append(1)
        return render(self, *args, **kwargs)

    monkeypatch.setattr(exp.Expression, "sql", counting)
    counts = []
    for terms in (50, 250):
        expression = "+".join(['"n"'] * terms)
        calls.clear()
        compile_program(SourceText(f"""CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64), "n" BIGINT, "s" BIGINT);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM "page", SUM({expression}), {expression}
  FROM "SOURCE_SQL_STREAM_001" GROUP BY "page", {expression}, STEP(ROWTIME BY INTERVAL '1' MINUTE);"""))  # fmt: skip
        grouped = len(calls)
        calls.clear()
        compile_program(SourceText(per_row(expression)))
        counts.append((grouped, len(calls)))
    assert counts == [(5, 1), (5, 1)]


def test_a_program_over_102400_characters_is_refused() -> None:
    assert MAX_PROGRAM_CHARS == 102_400
    head = len(per_row("1"))
    sql = per_row("1") + ("-- " + "x" * 96 + "\n") * 1100  # 100 characters a line
    assert refusal(sql) == (
        f"app.sql:{3 + (102_400 - head) // 100}:{(102_400 - head) % 100 + 1}: the program has {len(sql):,} characters, more than 102,400; "
        "KDA's application code is at most 102,400 characters (CreateApplication's ApplicationCode); split it into several apps"
    )


# -- 4. bytes -----------------------------------------------------------------------------------
def test_bytes_that_are_not_utf8_are_refused_with_their_offset(tmp_path: Path) -> None:
    path = tmp_path / "app.sql"
    path.write_bytes(HEAD.encode() + b"-- caf\xc3\xa9 \xff\n")
    with pytest.raises(SqlRefused) as caught:
        load_program(path)
    offset = len(HEAD.encode()) + 9
    assert (
        str(caught.value) == f"{path}:2:9: byte {offset} (0xff) is not UTF-8 text; save the program as UTF-8"
    )


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "app.sql"
    path.write_bytes(b"\xef\xbb\xbf" + per_row("1").encode())
    program = load_program(path)
    assert program.source.text == per_row("1")
    assert compile_program(SourceText("\ufeff" + per_row("1"))).source.text == per_row("1")


# -- 5. TIMESTAMP into INTEGER ------------------------------------------------------------------
MINUTE = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("visitor_id" VARCHAR(16), "hits" INTEGER, "minute" {type});
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "visitor_id", COUNT(*), {item}
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY "visitor_id", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);
"""
STEP = "STEP(\"SOURCE_SQL_STREAM_001\".ROWTIME BY INTERVAL '60' SECOND)"


def test_a_timestamp_into_an_integer_column_suggests_timestamp_or_unix_timestamp_not_cast() -> None:
    assert refusal(MINUTE.format(type="INTEGER", item=STEP)) == (
        f'app.sql:3:48: column "minute" of DESTINATION_SQL_STREAM is INTEGER but {STEP} gives timestamp; '
        f"change the column's type to TIMESTAMP, or write UNIX_TIMESTAMP({STEP}) (milliseconds since 1970-01-01)"
    )


def test_cast_of_a_timestamp_to_integer_is_refused_at_compile_time() -> None:
    assert refusal(MINUTE.format(type="INTEGER", item=f"CAST({STEP} AS INTEGER)")) == (
        f"app.sql:3:53: CAST({STEP} AS INT) fails for every row: a TIMESTAMP is not a number; "
        f"write UNIX_TIMESTAMP({STEP}) (milliseconds since 1970-01-01) or make the column TIMESTAMP"
    )


def test_the_suggested_unix_timestamp_runs() -> None:
    sql = MINUTE.format(type="BIGINT", item=f"UNIX_TIMESTAMP({STEP})")
    events = [{"event_time": "2026-01-27T10:00:01Z", "visitor_id": "v"}]
    rows, engine = run_spec(program_spec(compile_program(SourceText(sql)), "t", source="in", sink_topic="out"),
                            events, partitions=1)  # fmt: skip
    assert rows == [{"visitor_id": "v", "hits": 1, "minute": 1769508000000}]
    assert engine.counters.errors == 0


def test_a_window_row_that_cannot_be_computed_goes_to_the_dlq_and_the_app_goes_on() -> None:
    sql = """CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(16), "n" BIGINT);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "page", CAST(MAX("size") AS BIGINT) FROM "SOURCE_SQL_STREAM_001"
    GROUP BY "page", STEP(ROWTIME BY INTERVAL '1' MINUTE);
"""
    events: list[dict[str, Any]] = [
        {"event_time": "2026-01-27T10:00:01Z", "page": "/a", "size": "big"},
        {"event_time": "2026-01-27T10:00:02Z", "page": "/b", "size": "7"},
    ]
    rows, engine = run_spec(program_spec(compile_program(SourceText(sql)), "t", source="in", sink_topic="out"),
                            events, partitions=1)  # fmt: skip
    assert rows == [{"page": "/b", "n": 7}]
    assert engine.counters.errors == 1
    [(key, value, headers)] = engine.outbox.errors
    assert key == b"('/a',)"
    assert json.loads(value) == {"key": ["/a"], "window_start": "2026-01-27T10:00:00.000000Z",
                                 "window_end": "2026-01-27T10:01:00.000000Z", "aggregates": ["big"]}  # fmt: skip
    found = dict(headers)
    assert found["error.type"] == b"sql-evaluation-failed"
    assert found["error.message"] == (
        b"window 2026-01-27T10:00:00.000000Z to 2026-01-27T10:01:00.000000Z of key ('/a',): "
        b"CAST('big' AS BIGINT): 'big' is not an integer"
    )
