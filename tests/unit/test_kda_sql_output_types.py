"""Output rows take their stream's declared types: a JSON value that fits a number, BOOLEAN or
TIMESTAMP column is converted, one that does not rejects its record to the DLQ naming the column
(a new user's "visitor_id" INTEGER filled with hex strings went out as strings, with no error)."""

from __future__ import annotations

import json

from tests.unit.test_kda_sql_engine import run_spec, sql_spec

PROGRAM = """
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("visitor_id" INTEGER, "ok" BOOLEAN, "at" TIMESTAMP, "page" VARCHAR(4));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM "visitor_id", "ok", "at", "page" FROM "SOURCE_SQL_STREAM_001";
"""


def test_values_take_the_declared_types_and_a_misfit_goes_to_the_dlq_naming_its_column() -> None:
    events = [
        {"event_time": "2026-01-27T10:00:01Z", "visitor_id": "42", "ok": "true", "at": "2026-01-27 10:00:00", "page": "/a-long-page"},
        {"event_time": "2026-01-27T10:00:02Z", "visitor_id": "8f4a2e27b4437eeb", "ok": True, "at": None, "page": "/b"},
        {"event_time": "2026-01-27T10:00:03Z", "visitor_id": 7.0, "ok": "maybe", "at": None, "page": "/c"},
        {"event_time": "2026-01-27T10:00:04Z", "visitor_id": None, "ok": False, "at": "2026-01-27T10:00:04.5Z", "page": 12},
    ]  # fmt: skip
    rows, engine = run_spec(sql_spec(PROGRAM), events, partitions=1)

    assert rows == [
        {"visitor_id": 42, "ok": True, "at": "2026-01-27T10:00:00.000000Z", "page": "/a-long-page"},
        {"visitor_id": None, "ok": False, "at": "2026-01-27T10:00:04.500000Z", "page": "12"},
    ]  # text columns take any value as text; their length is not enforced
    assert engine.counters.errors == 2
    rejected = [
        (json.loads(value)["visitor_id"], dict(headers)) for _, value, headers in engine.outbox.errors
    ]
    assert [(visitor, found["error.type"]) for visitor, found in rejected] == [
        ("8f4a2e27b4437eeb", b"input-schema-mismatch"),
        (7.0, b"input-schema-mismatch"),
    ]
    assert [found["error.message"] for _, found in rejected] == [
        b"column \"visitor_id\" of DESTINATION_SQL_STREAM is INTEGER: '8f4a2e27b4437eeb' is not an integer",
        b"column \"ok\" of DESTINATION_SQL_STREAM is BOOLEAN: 'maybe' is not a BOOLEAN",
    ]
