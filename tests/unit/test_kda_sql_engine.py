"""KDA SQL programs evaluated on the window engine over fixed events (no Kafka): each shipped `.sql`
app equals its TOML app, and programs of our own equal DuckDB queries written independently."""

from __future__ import annotations

import json
import zlib
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from stream_apps.catalog import shipped_specs, shipped_sql
from stream_apps.engine import WindowEngine
from stream_apps.kda_sql.apps import program_spec, sql_app_spec
from stream_apps.kda_sql.columns import SqlType
from stream_apps.kda_sql.inputs import InputColumn
from stream_apps.kda_sql.program import compile_program
from stream_apps.kda_sql.refusals import SourceText
from stream_apps.records import Record
from stream_apps.spec import AppSpec
from tests.stream_events import clickstream
from tests.stream_oracle import expected_rows


def sql_spec(sql: str, input_columns: tuple[InputColumn, ...] = (), lateness: str | None = None) -> AppSpec:
    program = compile_program(SourceText(sql, "app.sql"), None, input_columns)
    return program_spec(program, "t", source="in", sink_topic="out", allowed_lateness=lateness)


def run_spec(spec: AppSpec, events: list[dict[str, Any]], partitions: int = 4, batch: int = 9,
             raw: list[bytes] | None = None) -> tuple[list[dict[str, Any]], WindowEngine]:  # fmt: skip
    """Events partitioned by visitor_id (file order per partition), batches interleaved; then every
    partition idles and everything closes. Returns the output rows and the engine (errors, counters)."""
    by_partition: dict[int, list[Record]] = {p: [] for p in range(partitions)}
    for event in events:
        key = str(event.get("visitor_id", ""))
        p = zlib.crc32(key.encode()) % partitions
        by_partition[p].append(Record(len(by_partition[p]), key.encode(), json.dumps(event).encode()))
    for value in raw or []:
        by_partition[0].append(Record(len(by_partition[0]), None, value))
    engine = WindowEngine(spec, list(range(partitions)), now_s=0.0)
    cursors = dict.fromkeys(by_partition, 0)
    while any(cursors[p] < len(by_partition[p]) for p in by_partition):
        for p in by_partition:
            chunk = by_partition[p][cursors[p] : cursors[p] + batch * (p + 1)]
            cursors[p] += len(chunk)
            engine.process(p, chunk, now_s=1.0)
            engine.advance(1.0)
    engine.advance(1_000.0)
    return [json.loads(value) for _, value in engine.outbox.rows], engine


def run_sql(sql: str, events: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    return run_spec(sql_spec(sql), events, **kwargs)[0]


def sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def duckdb_rows(events: list[dict], query: str) -> list[dict]:
    """Rows of `query` over the events as table `ev` (event_time as TIMESTAMPTZ `t`), as JSON rows."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = pa.Table.from_pylist(events)  # noqa: F841  (DuckDB's replacement scan reads it)
    con.execute('CREATE TABLE ev AS SELECT *, CAST(event_time AS TIMESTAMPTZ) AS t FROM "table"')
    cursor = con.execute(query)
    names = [d[0] for d in cursor.description]
    out = []
    for values in cursor.fetchall():
        row = {}
        for name, value in zip(names, values, strict=True):
            row[name] = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if hasattr(value, "strftime") else value
        out.append(row)
    return sorted_rows(json.loads(json.dumps(out)))


@pytest.mark.parametrize("name", ["page-views-1m", "error-rate-1m"])
def test_shipped_sql_app_equals_its_toml_app(name: str) -> None:
    events = clickstream(900, seed=5)
    events[7]["status"] = None  # a NULL status counts in neither the sums nor the shares
    toml = shipped_specs()[name]
    sql = sql_app_spec(shipped_sql()[name])
    assert (sql.window, sql.allowed_lateness_us, sql.idle_timeout_us) == (toml.window, 5_000_000, 10_000_000)
    rows, engine = run_spec(sql, events)
    assert sorted_rows(rows) == expected_rows(events, toml)
    assert engine.counters.windows_closed == len(rows)


def test_composite_keys_where_having_and_every_aggregate_equal_duckdb() -> None:
    events = clickstream(700, seed=9)
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64), "status" INTEGER,
        "window_start" TIMESTAMP, "n" BIGINT, "visitors" BIGINT, "min_bytes" INTEGER, "max_bytes" INTEGER,
        "avg_bytes" DOUBLE, "total" BIGINT, "with_referrer" BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM "page", "status", FLOOR(ROWTIME TO MINUTE), COUNT(*), COUNT(DISTINCT "visitor_id"),
             MIN("bytes"), MAX("bytes"), AVG("bytes"), SUM("bytes"), COUNT("referrer")
      FROM "SOURCE_SQL_STREAM_001"
      WHERE "is_bot" = FALSE AND "status" IN (200, 404, 500)
      GROUP BY "page", "status", FLOOR(ROWTIME TO MINUTE)
      HAVING COUNT(*) >= 2;
    """
    expected = duckdb_rows(
        events,
        """SELECT page, status, time_bucket(INTERVAL 1 MINUTE, t) AS window_start, count(*) AS n,
                  count(DISTINCT visitor_id) AS visitors, min(bytes) AS min_bytes, max(bytes) AS max_bytes,
                  avg(bytes) AS avg_bytes, sum(bytes) AS total, count(referrer) AS with_referrer
           FROM ev WHERE NOT is_bot AND status IN (200, 404, 500)
           GROUP BY page, status, window_start HAVING count(*) >= 2""",
    )
    rows = run_sql(sql, events)
    assert len(expected) > 20
    assert sorted_rows(rows) == expected


def test_pump_chain_per_row_then_window_then_per_row() -> None:
    events = clickstream(500, seed=3)
    sql = """
    CREATE OR REPLACE STREAM "CLEAN" ("page" VARCHAR(64), "kb" DOUBLE, "slow" BOOLEAN);
    CREATE OR REPLACE STREAM "PER_PAGE" ("page" VARCHAR(64), "ws" TIMESTAMP, "kb" DOUBLE, "n" BIGINT);
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("PAGE" VARCHAR(64), "ws" TIMESTAMP, "kb_per_view" DOUBLE);
    CREATE OR REPLACE PUMP "CLEAN_PUMP" AS INSERT INTO "CLEAN"
      SELECT STREAM UPPER("page"), "bytes" / 1000.0, "bytes" > 2500 FROM "SOURCE_SQL_STREAM_001"
      WHERE NOT "is_bot";
    CREATE OR REPLACE PUMP "WINDOW_PUMP" AS INSERT INTO "PER_PAGE"
      SELECT STREAM "page", STEP(ROWTIME BY INTERVAL '2' MINUTE), SUM("kb"), COUNT(*) FROM "CLEAN"
      GROUP BY "page", STEP(ROWTIME BY INTERVAL '2' MINUTE);
    CREATE OR REPLACE PUMP "OUT_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM "page", "ws", "kb" / "n" FROM "PER_PAGE" WHERE "n" > 3;
    """
    expected = duckdb_rows(
        events,
        """SELECT upper(page) AS "PAGE", time_bucket(INTERVAL 2 MINUTE, t) AS ws,
                  sum(bytes / 1000.0) / count(*) AS kb_per_view
           FROM ev WHERE NOT is_bot GROUP BY upper(page), ws HAVING count(*) > 3""",
    )
    rows = run_sql(sql, events)
    assert [round(r.pop("kb_per_view"), 9) for r in sorted_rows(rows)] == [
        round(r.pop("kb_per_view"), 9) for r in expected
    ]
    assert sorted_rows(rows) == sorted_rows(expected)


STAGGER = """
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("visitor_id" VARCHAR(16), "first_seen" TIMESTAMP,
    "last_seen" TIMESTAMP, "views" BIGINT);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM "visitor_id", MIN(ROWTIME), MAX(ROWTIME), COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  WINDOWED BY STAGGER (PARTITION BY "visitor_id" RANGE INTERVAL '30' SECOND);
"""


def test_stagger_window_opens_at_a_keys_first_event() -> None:
    events = [
        {"visitor_id": "a", "event_time": "2026-01-27T10:00:05Z"},
        {"visitor_id": "b", "event_time": "2026-01-27T10:00:10Z"},
        {"visitor_id": "a", "event_time": "2026-01-27T10:00:30Z"},
        {"visitor_id": "a", "event_time": "2026-01-27T10:00:35Z"},  # 30 s after a's first: a new window
        {"visitor_id": "b", "event_time": "2026-01-27T10:00:39.999999Z"},
        {"visitor_id": "a", "event_time": "2026-01-27T10:00:50Z"},
    ]
    assert sorted_rows(run_sql(STAGGER, events, partitions=1)) == sorted_rows(
        [
            {"visitor_id": "a", "first_seen": "2026-01-27T10:00:05.000000Z", "last_seen": "2026-01-27T10:00:30.000000Z", "views": 2},
            {"visitor_id": "a", "first_seen": "2026-01-27T10:00:35.000000Z", "last_seen": "2026-01-27T10:00:50.000000Z", "views": 2},
            {"visitor_id": "b", "first_seen": "2026-01-27T10:00:10.000000Z", "last_seen": "2026-01-27T10:00:39.999999Z", "views": 2},
        ]
    )  # fmt: skip


PER_ROW = """
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("id" VARCHAR(8), "kind" VARCHAR(8), "size" INTEGER,
    "path" VARCHAR(32), "at" INTEGER, "minute" TIMESTAMP, "hour" INTEGER, "ms" BIGINT, "epoch_ms" BIGINT,
    "text" VARCHAR(32), "parsed" TIMESTAMP, "flags" BOOLEAN, "missing" BOOLEAN, "half" INTEGER);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM "id",
         CASE WHEN "status" BETWEEN 400 AND 499 THEN 'client' WHEN "status" >= 500 THEN 'server' ELSE 'ok' END,
         CAST("bytes" AS INTEGER),
         LOWER(TRIM(BOTH ' ' FROM SUBSTRING("url" FROM 2 FOR 8))),
         POSITION('/' IN "url"),
         FLOOR(ROWTIME TO MINUTE),
         EXTRACT(HOUR FROM ROWTIME),
         TSDIFF(ROWTIME, CHAR_TO_TIMESTAMP('yyyy-MM-dd HH:mm:ss', '2026-01-27 10:00:00')),
         UNIX_TIMESTAMP(ROWTIME),
         TIMESTAMP_TO_CHAR('yyyy-MM-dd HH:mm', ROWTIME - INTERVAL '1' HOUR) || '!',
         ROWTIME + INTERVAL '90' SECOND,
         "url" LIKE '/a%' OR "id" IN ('x', 'y'),
         "ref" IS NULL,
         7 / 2
  FROM "SOURCE_SQL_STREAM_001"
  WHERE "id" IS NOT NULL AND UPPER("id") <> 'SKIP';
"""


def test_per_row_pump_evaluates_every_expression() -> None:
    events = [
        {"id": "x", "event_time": "2026-01-27T10:01:02.5Z", "status": 404, "bytes": "120", "url": "/ab cd/EF/g", "ref": None},
        {"id": "skip", "event_time": "2026-01-27T10:01:03Z", "status": 200, "bytes": 1, "url": "/a"},
        {"event_time": "2026-01-27T10:01:04Z", "status": 200, "bytes": 1, "url": "/a"},
        {"id": "z", "event_time": "2026-01-27T11:59:59Z", "status": 503, "bytes": 7.0, "url": "b/c", "ref": "r"},
    ]  # fmt: skip
    rows = run_sql(PER_ROW, events, partitions=1)
    assert rows == [
        {"id": "x", "kind": "client", "size": 120, "path": "ab cd/ef", "at": 1, "minute": "2026-01-27T10:01:00.000000Z",
         "hour": 10, "ms": 62_500, "epoch_ms": 1769508062500, "text": "2026-01-27 09:01!",
         "parsed": "2026-01-27T10:02:32.500000Z", "flags": True, "missing": True, "half": 3},
        {"id": "z", "kind": "server", "size": 7, "path": "/c", "at": 2, "minute": "2026-01-27T11:59:00.000000Z",
         "hour": 11, "ms": 7_199_000, "epoch_ms": 1769515199000, "text": "2026-01-27 10:59!",
         "parsed": "2026-01-27T12:01:29.000000Z", "flags": False, "missing": False, "half": 3},
    ]  # fmt: skip


def test_input_schema_rejects_a_record_to_the_dlq_naming_the_column() -> None:
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(8), "n" BIGINT, "b" BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM "page", COUNT(*), SUM("bytes") FROM "SOURCE_SQL_STREAM_001"
      GROUP BY "page", STEP(ROWTIME BY INTERVAL '1' MINUTE);
    """
    schema = (
        InputColumn("page", SqlType("VARCHAR", 8), ("request", "page")),
        InputColumn("bytes", SqlType("BIGINT"), ("bytes",)),
    )
    events: list[dict[str, Any]] = [
        {"event_time": "2026-01-27T10:00:01Z", "request": {"page": "/a"}, "bytes": 10},
        {"event_time": "2026-01-27T10:00:02Z", "request": {"page": "/a"}, "bytes": "many"},
        {"event_time": "2026-01-27T10:00:03Z", "request": {"page": "/a"}, "bytes": "5"},
    ]
    rows, engine = run_spec(sql_spec(sql, schema), events, partitions=1)
    assert rows == [{"page": "/a", "n": 2, "b": 15}]
    assert engine.counters.errors == 1
    [(_, value, headers)] = engine.outbox.errors
    assert json.loads(value)["bytes"] == "many"
    found = dict(headers)
    assert found["error.type"] == b"input-schema-mismatch"
    assert found["error.message"] == b"column 'bytes' (BIGINT): 'many' is not an integer"
    assert found["source.offset"] == b"1"


def test_late_event_of_a_sql_app_goes_to_late_events() -> None:
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("ws" TIMESTAMP, "n" BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM STEP(ROWTIME BY INTERVAL '1' MINUTE), COUNT(*) FROM "SOURCE_SQL_STREAM_001"
      GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE);
    """
    events = [
        {"event_time": "2026-01-27T10:00:01Z"},
        {"event_time": "2026-01-27T10:02:00Z"},
        {"event_time": "2026-01-27T10:00:59Z"},  # its window closed when 10:02 arrived
    ]
    rows, engine = run_spec(sql_spec(sql), events, partitions=1, batch=1)
    assert rows == [
        {"ws": "2026-01-27T10:00:00.000000Z", "n": 1},
        {"ws": "2026-01-27T10:02:00.000000Z", "n": 1},
    ]
    assert engine.counters.late == 1
    assert len(engine.outbox.late) == 1


WEATHER = [
    ("2018-11-01 01:00", "Denver", 29), ("2018-11-01 01:00", "Anchorage", 2), ("2018-11-01 06:00", "Miami", 65),
    ("2018-11-01 07:00", "Denver", 32), ("2018-11-01 09:00", "Anchorage", 9), ("2018-11-01 13:00", "Denver", 50),
    ("2018-11-01 17:00", "Anchorage", 10), ("2018-11-01 18:00", "Miami", 71), ("2018-11-01 19:00", "Denver", 43),
    ("2018-11-02 01:00", "Anchorage", 4), ("2018-11-02 01:00", "Denver", 39), ("2018-11-02 07:00", "Denver", 46),
    ("2018-11-02 09:00", "Anchorage", 3), ("2018-11-02 13:00", "Denver", 56), ("2018-11-02 17:00", "Anchorage", 2),
    ("2018-11-02 19:00", "Denver", 50), ("2018-11-03 01:00", "Denver", 36), ("2018-11-03 01:00", "Anchorage", 1),
]  # fmt: skip


def test_aws_sliding_window_example_with_its_inclusive_lower_bound() -> None:
    """AWS, KDA SQL Reference, "Windowed Aggregation on Streams": MIN and MAX of TEMP over
    RANGE INTERVAL '1' DAY PRECEDING on WEATHERSTREAM. The docs' results, except that two readings
    at one time are one row here (the last of AWS's two rows, which counts both): at 2018-11-02 01:00
    the window still holds 2018-11-01 01:00 (MIN 2), which `(t - 1 day, t]` would not."""
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ROWTIME_OUT TIMESTAMP, WMIN_TEMP INTEGER, WMAX_TEMP INTEGER);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM ROWTIME, MIN(TEMP) OVER W1 AS WMIN_TEMP, MAX(TEMP) OVER W1 AS WMAX_TEMP
      FROM "SOURCE_SQL_STREAM_001"
      WINDOW W1 AS (RANGE INTERVAL '1' DAY PRECEDING);
    """
    events = [{"event_time": f"{t}:00Z", "CITY": city, "TEMP": temp} for t, city, temp in WEATHER]
    rows = run_sql(sql, events, partitions=1)
    stated = [  # AWS's results table (ROWTIME, WMIN_TEMP, WMAX_TEMP), ties as the last row of each
        ("2018-11-01 01:00", 2, 29), ("2018-11-01 06:00", 2, 65), ("2018-11-01 07:00", 2, 65),
        ("2018-11-01 09:00", 2, 65), ("2018-11-01 13:00", 2, 65), ("2018-11-01 17:00", 2, 65),
        ("2018-11-01 18:00", 2, 71), ("2018-11-01 19:00", 2, 71), ("2018-11-02 01:00", 2, 71),
        ("2018-11-02 07:00", 4, 71), ("2018-11-02 09:00", 3, 71), ("2018-11-02 13:00", 3, 71),
        ("2018-11-02 17:00", 2, 71), ("2018-11-02 19:00", 2, 56), ("2018-11-03 01:00", 1, 56),
    ]  # fmt: skip
    assert rows == [
        {"ROWTIME_OUT": f"{t.replace(' ', 'T')}:00.000000Z", "WMIN_TEMP": low, "WMAX_TEMP": high}
        for t, low, high in stated
    ]


def test_sliding_range_partitioned_rows_carry_their_own_columns_and_equal_duckdb() -> None:
    events = clickstream(400, seed=13, visitors=6)
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("visitor_id" VARCHAR(8), "event_time" TIMESTAMP,
        "page" VARCHAR(32), "views_1m" BIGINT, "bytes_1m" BIGINT, "pages_1m" BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM "visitor_id", ROWTIME, "page", COUNT(*) OVER w, SUM("bytes") OVER w, COUNT(DISTINCT "page") OVER w
      FROM "SOURCE_SQL_STREAM_001"
      WINDOW w AS (PARTITION BY "visitor_id" RANGE INTERVAL '1' MINUTE PRECEDING);
    """
    expected = duckdb_rows(
        events,
        """SELECT visitor_id, t AS event_time, page,
                  (SELECT count(*) FROM ev e WHERE e.visitor_id = ev.visitor_id AND e.t BETWEEN ev.t - INTERVAL 1 MINUTE AND ev.t) AS views_1m,
                  (SELECT sum(bytes) FROM ev e WHERE e.visitor_id = ev.visitor_id AND e.t BETWEEN ev.t - INTERVAL 1 MINUTE AND ev.t) AS bytes_1m,
                  (SELECT count(DISTINCT page) FROM ev e WHERE e.visitor_id = ev.visitor_id AND e.t BETWEEN ev.t - INTERVAL 1 MINUTE AND ev.t) AS pages_1m
           FROM ev""",
    )  # fmt: skip
    assert len({(e["visitor_id"], e["event_time"]) for e in events}) == len(events)  # no ties: one row each
    rows = run_sql(sql, events)
    assert len(rows) == 400
    assert sorted_rows(rows) == expected


def test_sliding_rows_preceding_and_rows_sharing_a_time_are_one_row() -> None:
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("k" VARCHAR(4), "v" INTEGER, "last3" INTEGER, "n" BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM "k", "v", SUM("v") OVER (PARTITION BY "k" ROWS 2 PRECEDING),
             COUNT(*) OVER (PARTITION BY "k" ROWS 2 PRECEDING)
      FROM "SOURCE_SQL_STREAM_001";
    """
    events = [
        {"k": "a", "v": 1, "event_time": "2026-01-27T10:00:00Z"},
        {"k": "b", "v": 100, "event_time": "2026-01-27T10:00:00Z"},
        {"k": "a", "v": 2, "event_time": "2026-01-27T10:00:01Z"},
        {"k": "a", "v": 3, "event_time": "2026-01-27T10:00:02Z"},
        {"k": "a", "v": 4, "event_time": "2026-01-27T10:00:03Z"},
        {
            "k": "a",
            "v": 5,
            "event_time": "2026-01-27T10:00:03Z",
        },  # same time as 4: one row, the last's columns
        {"k": "b", "v": 200, "event_time": "2026-01-27T10:09:00Z"},
    ]
    assert sorted_rows(run_sql(sql, events, partitions=1)) == sorted_rows(
        [
            {"k": "a", "v": 1, "last3": 1, "n": 1},
            {"k": "a", "v": 2, "last3": 3, "n": 2},
            {"k": "a", "v": 3, "last3": 6, "n": 3},
            {"k": "a", "v": 5, "last3": 12, "n": 3},
            {"k": "b", "v": 100, "last3": 100, "n": 1},
            {"k": "b", "v": 200, "last3": 300, "n": 2},
        ]
    )


def test_aws_stagger_window_example_counts_each_group_of_six() -> None:
    """AWS, KDA SQL Developer Guide, "Example: Stagger Window": groups of six records with one
    EVENT_TIME and TICKER give one row each with TICKER_COUNT 6. (AWS's ROWTIME was the arrival time,
    ten seconds apart; tidelake's is EVENT_TIME, the same for the six, so they share one window.)"""
    sql = """
    -- tidelake: time_field = EVENT_TIME
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
        event_time TIMESTAMP,
        ticker_symbol    VARCHAR(4),
        ticker_count     INTEGER);

    CREATE OR REPLACE PUMP "STREAM_PUMP" AS
      INSERT INTO "DESTINATION_SQL_STREAM"
        SELECT STREAM
            EVENT_TIME,
            TICKER,
            COUNT(TICKER) AS ticker_count
        FROM "SOURCE_SQL_STREAM_001"
        WINDOWED BY STAGGER (
                PARTITION BY TICKER, EVENT_TIME RANGE INTERVAL '1' MINUTE);
    """
    events = [{"EVENT_TIME": "2018-08-01T20:17:20.797945", "TICKER": "AMZN"}] * 6 + [
        {"EVENT_TIME": "2018-08-01T20:18:21.043084", "TICKER": "INTC"}
    ] * 6
    rows = run_sql(sql, events, partitions=1, batch=1)
    assert rows == [
        {"EVENT_TIME": "2018-08-01T20:17:20.797945Z", "TICKER_SYMBOL": "AMZN", "TICKER_COUNT": 6},
        {"EVENT_TIME": "2018-08-01T20:18:21.043084Z", "TICKER_SYMBOL": "INTC", "TICKER_COUNT": 6},
    ]


def test_top_k_items_tumbling_gives_one_row_per_item_most_frequent_first() -> None:
    sql = """
    CREATE OR REPLACE STREAM DESTINATION_SQL_STREAM ("TICKER_SYMBOL" VARCHAR(4), "MOST_FREQUENT_VALUES" BIGINT);
    CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(
          CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001" WHERE "PRICE" > 1), 'TICKER_SYMBOL', 2, 60));
    """
    ticks = ["AMZN", "AMZN", "INTC", "AAPL", "INTC", "AMZN", "TBV", "TBV"]
    events = [
        {"event_time": f"2026-01-27T10:00:{i:02d}Z", "TICKER_SYMBOL": t, "PRICE": 0.5 if i == 0 else 10}
        for i, t in enumerate(ticks)
    ]
    events.append({"event_time": "2026-01-27T10:01:05Z", "TICKER_SYMBOL": "MSFT", "PRICE": 3})
    assert run_sql(sql, events, partitions=1) == [
        {"TICKER_SYMBOL": "AMZN", "MOST_FREQUENT_VALUES": 2},  # the first AMZN is filtered by the cursor
        {"TICKER_SYMBOL": "INTC", "MOST_FREQUENT_VALUES": 2},  # ties (INTC, TBV) by value
        {"TICKER_SYMBOL": "MSFT", "MOST_FREQUENT_VALUES": 1},
    ]


def test_count_distinct_items_tumbling_counts_per_window() -> None:
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("NUMBER_OF_DISTINCT_ITEMS" BIGINT);
    CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM * FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(
          CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"), 'page', 30));
    """
    events = [
        {"event_time": "2026-01-27T10:00:01Z", "page": "/a"},
        {"event_time": "2026-01-27T10:00:02Z", "page": "/b"},
        {"event_time": "2026-01-27T10:00:29Z", "page": "/a"},
        {"event_time": "2026-01-27T10:00:30Z", "page": "/a"},
    ]
    assert run_sql(sql, events, partitions=1) == [
        {"NUMBER_OF_DISTINCT_ITEMS": 2},
        {"NUMBER_OF_DISTINCT_ITEMS": 1},
    ]


def test_unquoted_names_read_lower_case_json_fields_as_kda_discovery_named_them() -> None:
    """AWS's tumbling-window example: unquoted Ticker_Symbol and Price (TICKER_SYMBOL, PRICE) over
    records whose JSON fields are ticker_symbol and price; a field named exactly so wins."""
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), min_price REAL, max_price REAL);
    CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM Ticker_Symbol, MIN(Price) AS Price, MAX(Price) AS Price
      FROM "SOURCE_SQL_STREAM_001"
      GROUP BY Ticker_Symbol, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);
    """
    events = [
        {"event_time": "2026-01-27T10:00:01Z", "ticker_symbol": "AMZN", "price": 10.5},
        {"event_time": "2026-01-27T10:00:02Z", "ticker_symbol": "AMZN", "price": 9.0},
        {"event_time": "2026-01-27T10:00:03Z", "TICKER_SYMBOL": "INTC", "ticker_symbol": "x", "price": 3},
    ]
    assert sorted_rows(run_sql(sql, events, partitions=1)) == [
        {"TICKER_SYMBOL": "AMZN", "MIN_PRICE": 9.0, "MAX_PRICE": 10.5},
        {"TICKER_SYMBOL": "INTC", "MIN_PRICE": 3.0, "MAX_PRICE": 3.0},
    ]


def test_several_pumps_into_one_stream_a_window_and_per_row_rows_together() -> None:
    """Fan-out from the source and fan-in into DESTINATION_SQL_STREAM: a per-row pump writes each
    error at once, a tumbling window pump writes a count per minute when the window closes."""
    sql = """
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("kind" VARCHAR(8), "at" TIMESTAMP, "n" BIGINT);
    CREATE OR REPLACE STREAM "ERRORS" ("at" TIMESTAMP, "status" INTEGER);
    CREATE OR REPLACE PUMP "ERRORS_PUMP" AS INSERT INTO "ERRORS"
      SELECT STREAM ROWTIME, "status" FROM "SOURCE_SQL_STREAM_001" WHERE "status" >= 500;
    CREATE OR REPLACE PUMP "ERROR_ROWS" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM 'error', "at", "status" FROM "ERRORS";
    CREATE OR REPLACE PUMP "PER_MINUTE" AS INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM 'minute', STEP(ROWTIME BY INTERVAL '1' MINUTE), COUNT(*) FROM "SOURCE_SQL_STREAM_001"
      GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE);
    """
    events = [
        {"event_time": "2026-01-27T10:00:01Z", "status": 200},
        {"event_time": "2026-01-27T10:00:02Z", "status": 503},
        {"event_time": "2026-01-27T10:01:03Z", "status": 500},
    ]
    rows, engine = run_spec(sql_spec(sql), events, partitions=1, batch=1)
    assert rows == [
        {"kind": "error", "at": "2026-01-27T10:00:02.000000Z", "n": 503},
        {"kind": "error", "at": "2026-01-27T10:01:03.000000Z", "n": 500},  # as it is read
        {"kind": "minute", "at": "2026-01-27T10:00:00.000000Z", "n": 2},  # once 10:01:03 moved the watermark
        {"kind": "minute", "at": "2026-01-27T10:01:00.000000Z", "n": 1},
    ]
    assert (engine.counters.events_in, engine.counters.windowed, engine.counters.rows_out) == (3, 3, 4)
