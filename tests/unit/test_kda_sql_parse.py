"""Reading KDA SQL programs: statements, names, types, and every refusal with its line and column."""

from __future__ import annotations

import pytest

from stream_apps.kda_sql.columns import SqlType
from stream_apps.kda_sql.program import compile_program
from stream_apps.kda_sql.refusals import SourceText, SqlRefused
from stream_apps.kda_sql.statements import (
    PumpStatement,
    StreamStatement,
    parse_statements,
    split_statements,
)

HEAD = 'CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(16), "n" BIGINT);\n'
PUMP = 'CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"\n'


def refusal(sql: str) -> SqlRefused:
    with pytest.raises(SqlRefused) as caught:
        compile_program(SourceText(sql, "app.sql"))
    return caught.value


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    sql = "-- a; comment\nCREATE STREAM s (a VARCHAR(4));\n/* b; */ CREATE PUMP p AS INSERT INTO s SELECT STREAM ';' FROM x;"
    parts = split_statements(SourceText(sql))
    assert [offset for offset, _ in parts] == [14, 55]
    assert parts[1][1] == "CREATE PUMP p AS INSERT INTO s SELECT STREAM ';' FROM x"


def test_unquoted_names_fold_to_upper_case_and_quoted_names_keep_theirs() -> None:
    sql = 'create or replace stream dest (page VARCHAR(8), "Page" DECIMAL(10, 2), ts timestamp);\n' + (
        'CREATE PUMP pump1 AS INSERT INTO dest (page, "Page", ts) SELECT STREAM a, b, c FROM "SOURCE_SQL_STREAM_001";'
    )
    stream, pump = parse_statements(SourceText(sql))
    assert isinstance(stream, StreamStatement) and isinstance(pump, PumpStatement)
    assert stream.name == "DEST"
    assert [(c.name, c.type) for c in stream.columns] == [
        ("PAGE", SqlType("VARCHAR", 8)),
        ("Page", SqlType("DECIMAL", 10, 2)),
        ("TS", SqlType("TIMESTAMP")),
    ]
    assert (pump.name, pump.target, pump.target_columns) == ("PUMP1", "DEST", ("PAGE", "Page", "TS"))
    assert pump.select.startswith("SELECT        a, b, c")  # STREAM blanked, offsets kept


#: What each refusal's position points at (the start of the construct, or of its first name).
AT = {
    "type 'BLOB' is not supported": "BLOB", "a CREATE statement is not part": "CREATE TABLE",
    "a INSERT statement is not part": "INSERT", "JOIN is not supported": "JOIN",
    "window W is not defined": "COUNT(*) OVER", "RANDOM_CUT_FOREST reads SOURCE_SQL_STREAM_001 directly": '"SOURCE_SQL_STREAM_001"',
    'aggregate STDDEV_POP("n") is not supported': "STDDEV_POP", "aggregates over different windows in one pump": "COUNT(*) OVER (ROWS 3", "subqueries are not supported": "(SELECT",
    "function HOTSPOTS is not supported": "HOTSPOTS", "CURRENT_ROW_TIMESTAMP": "CURRENT_ROW_TIMESTAMP",
    "a streaming GROUP BY needs a window": '"page";', "COUNT(*) without a window": "COUNT(*)",
    'column "url" is neither in GROUP BY nor aggregated': '"url"', "the SELECT gives 1 columns and DESTINATION_SQL_STREAM takes 2": "SELECT",
    'column "n" of DESTINATION_SQL_STREAM is BIGINT but ROWTIME gives timestamp': "ROWTIME",
    "pump P reads OTHER, which no pump fills": "CREATE OR REPLACE PUMP", "which no CREATE STREAM declares": "CREATE OR REPLACE PUMP",
    "the program has 2 output streams (DESTINATION_SQL_STREAM, OTHER)": 'CREATE OR REPLACE PUMP "Q"', "ORDER BY is not supported": "ORDER BY",
    "is not an interval tidelake reads": "'1' MONTH", "never closed": "'a", "cannot read this SELECT": "(;",
}  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "position", "message"),
    [
        ('CREATE STREAM "S" ("a" BLOB);', (1, 24), "type 'BLOB' is not supported"),
        (HEAD + "CREATE TABLE t (a INT);", (2, 1), "a CREATE statement is not part"),
        (HEAD + "INSERT INTO x SELECT 1;", (2, 1), "a INSERT statement is not part"),
        (HEAD + PUMP + '  SELECT STREAM s."page", COUNT(*) FROM "SOURCE_SQL_STREAM_001" AS s\n  JOIN r ON s.a = r.a\n  GROUP BY s."page", STEP(ROWTIME BY INTERVAL \'1\' MINUTE);',
         (4, 3), "JOIN is not supported"),
        (HEAD + PUMP + '  SELECT STREAM "page", COUNT(*) OVER w FROM "SOURCE_SQL_STREAM_001" WINDOW v AS (RANGE INTERVAL \'1\' MINUTE PRECEDING);',
         (3, 25), "window W is not defined"),
        (HEAD + PUMP + '  SELECT STREAM "page", COUNT(*) OVER (ROWS 2 PRECEDING) + COUNT(*) OVER (ROWS 3 PRECEDING) FROM "SOURCE_SQL_STREAM_001";',
         (3, 60), "aggregates over different windows in one pump"),
        (HEAD + PUMP + '  SELECT STREAM "page", 1 FROM (SELECT STREAM * FROM "SOURCE_SQL_STREAM_001");', (3, 32), "subqueries are not supported"),
        (HEAD + PUMP + '  SELECT STREAM "page", HOTSPOTS("n") FROM "SOURCE_SQL_STREAM_001";', (3, 25), "function HOTSPOTS is not supported"),
        (HEAD + PUMP + '  SELECT STREAM "page", CURRENT_ROW_TIMESTAMP FROM "SOURCE_SQL_STREAM_001";', (3, 25), "CURRENT_ROW_TIMESTAMP"),
        (HEAD + PUMP + '  SELECT STREAM "page", COUNT(*) FROM "SOURCE_SQL_STREAM_001" GROUP BY "page";', (3, 72), "a streaming GROUP BY needs a window"),
        (HEAD + PUMP + '  SELECT STREAM "page", COUNT(*) FROM "SOURCE_SQL_STREAM_001";', (3, 25), "COUNT(*) without a window"),
        (HEAD + PUMP + '  SELECT STREAM "url", COUNT(*) FROM "SOURCE_SQL_STREAM_001" GROUP BY "page", STEP(ROWTIME BY INTERVAL \'1\' MINUTE);',
         (3, 17), 'column "url" is neither in GROUP BY nor aggregated'),
        (HEAD + PUMP + '  SELECT STREAM "page" FROM "SOURCE_SQL_STREAM_001";', (3, 3), "the SELECT gives 1 columns and DESTINATION_SQL_STREAM takes 2"),
        (HEAD + PUMP + '  SELECT STREAM "page", ROWTIME FROM "SOURCE_SQL_STREAM_001";', (3, 25), 'column "n" of DESTINATION_SQL_STREAM is BIGINT but ROWTIME gives timestamp'),
        (HEAD + PUMP + '  SELECT STREAM "page", 1 FROM "OTHER";', (2, 1), "pump P reads OTHER, which no pump fills"),
        (HEAD + PUMP.replace('"DESTINATION_SQL_STREAM"', '"NOWHERE"') + '  SELECT STREAM "page", 1 FROM "SOURCE_SQL_STREAM_001";', (2, 1), "which no CREATE STREAM declares"),
        ('CREATE STREAM "OTHER" ("page" VARCHAR(16));\n' + HEAD + PUMP + '  SELECT STREAM "page", 1 FROM "SOURCE_SQL_STREAM_001";\n'
         + PUMP.replace('"P"', '"Q"').replace('"DESTINATION_SQL_STREAM"', '"OTHER"') + '  SELECT STREAM "page" FROM "SOURCE_SQL_STREAM_001";',
         (5, 1), "the program has 2 output streams (DESTINATION_SQL_STREAM, OTHER)"),
        (HEAD + PUMP + '  SELECT STREAM "page", 1 FROM "SOURCE_SQL_STREAM_001" ORDER BY "page";', (3, 56), "ORDER BY is not supported"),
        (HEAD + PUMP + '  SELECT STREAM "page", COUNT(*) FROM "SOURCE_SQL_STREAM_001" GROUP BY "page", STEP(ROWTIME BY INTERVAL \'1\' MONTH);',
         (3, 105), "is not an interval tidelake reads"),
        (HEAD + PUMP + "  SELECT STREAM \"page\", 1 FROM \"SOURCE_SQL_STREAM_001\" WHERE \"page\" = 'a", (3, 71), "never closed"),
        (HEAD + PUMP + '  SELECT STREAM "page", 1 FROM "SOURCE_SQL_STREAM_001" WHERE ((;', (3, 63), "cannot read this SELECT"),
        (HEAD + PUMP + '  SELECT STREAM "page", "n" FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM "page", "n" FROM "SOURCE_SQL_STREAM_001")));',
         (3, 96), "RANDOM_CUT_FOREST reads SOURCE_SQL_STREAM_001 directly"),
        (HEAD + PUMP + '  SELECT STREAM "page", STDDEV_POP("n") FROM "SOURCE_SQL_STREAM_001" GROUP BY "page", FLOOR(ROWTIME TO HOUR);',
         (3, 25), "aggregate STDDEV_POP(\"n\") is not supported"),
    ],
)  # fmt: skip
def test_outside_the_subset_is_refused_with_line_column_and_what_to_write(
    sql: str, position: tuple[int, int], message: str
) -> None:
    error = refusal(sql)
    assert message in str(error)
    assert (error.line, error.col) == position, str(error)
    assert str(error).startswith(f"app.sql:{position[0]}:{position[1]}: ")
    assert "; " in str(error)  # what to write instead
    assert sql.splitlines()[error.line - 1][error.col - 1 :].startswith(AT[message]), "points elsewhere"


def test_an_in_application_streams_unknown_column_is_refused_with_its_columns() -> None:
    sql = (
        'CREATE STREAM "MID" ("page" VARCHAR(8));\n' + HEAD
        + 'CREATE PUMP "A" AS INSERT INTO "MID" SELECT STREAM "page" FROM "SOURCE_SQL_STREAM_001";\n'
        + 'CREATE PUMP "B" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM page, 1 FROM "MID";'
    )  # fmt: skip
    error = refusal(sql)
    assert (error.line, error.col) == (4, 71)
    assert 'MID has no column PAGE; its columns are page; quote a lower-case name: "page"' in str(error)
