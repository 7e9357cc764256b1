"""NOT in its every spelling: sqlglot reads `x NOT LIKE p` as Like(negate=True) where `NOT x LIKE p`
is Not(Like), so each spelling must give the same rows (a new user's `NOT LIKE '%bot%'` kept only
the bots)."""

from __future__ import annotations

import pytest

from tests.unit.test_kda_sql_engine import run_sql

EVENTS = [
    {"id": "a", "event_time": "2026-01-27T10:00:01Z", "agent": "Googlebot/2.1", "ref": None},
    {"id": "b", "event_time": "2026-01-27T10:00:02Z", "agent": "Firefox/128", "ref": "x"},
    {"id": "c", "event_time": "2026-01-27T10:00:03Z", "agent": "bingbot", "ref": "y"},
    {"id": "d", "event_time": "2026-01-27T10:00:04Z", "ref": None},  # no agent: NULL, neither side
]

PROGRAM = """
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("id" VARCHAR(8));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM "id" FROM "SOURCE_SQL_STREAM_001" WHERE {condition};
"""


@pytest.mark.parametrize(
    ("condition", "ids"),
    [
        ("\"agent\" LIKE '%bot%'", ["a", "c"]),
        ("\"agent\" NOT LIKE '%bot%'", ["b"]),
        ("NOT \"agent\" LIKE '%bot%'", ["b"]),
        ("NOT (\"agent\" NOT LIKE '%bot%')", ["a", "c"]),
        ('"ref" IS NULL', ["a", "d"]),
        ('"ref" IS NOT NULL', ["b", "c"]),
        ('NOT "ref" IS NULL', ["b", "c"]),
        ("\"id\" NOT IN ('a', 'b')", ["c", "d"]),
        ("\"id\" NOT BETWEEN 'b' AND 'c'", ["a", "d"]),
    ],
)
def test_each_spelling_of_not_keeps_the_rows_sql_means(condition: str, ids: list[str]) -> None:
    rows = run_sql(PROGRAM.format(condition=condition), EVENTS, partitions=1)
    assert sorted(row["id"] for row in rows) == ids
