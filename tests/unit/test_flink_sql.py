"""The compiler to Flink SQL (stream_apps/flink_sql.py) and `tidelake stream export`: each shipped
app's exact script (tests/data/flink/*.sql; a change to the compiler shows there as a diff to review),
the windows, aggregates, filters and keys as Flink SQL, and every refusal's exact message.

That the scripts are valid Flink SQL, and give the engine's rows, is checked against Flink itself:
the in-suite EXPLAIN of every shipped script and the mini-cluster runs are in the Flink runtime's
tests (tests/integration/test_flink_runtime.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from stream_apps import FlinkScript, FlinkUnsupported, compile_flink_sql
from stream_apps.catalog import SPECS_DIR, shipped_specs, shipped_sql
from stream_apps.flink_kda import _key_repr
from stream_apps.flink_sql import interval
from stream_apps.flink_windows import aggregate_sql, key_text
from stream_apps.kda_sql.apps import sql_app_spec
from stream_apps.spec import AppSpec, parse_aggregate, spec_from_mapping
from tidelake.cli import app

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "flink"
SERVERS = "127.0.0.1:9092"
DOCS = '(docs/flink.md, "What Flink SQL cannot express")'
TIME = "'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''"
ANOMALY_TOML = (
    "app 'page-view-anomalies': the anomaly score ([anomaly], a random cut forest) cannot run on Flink SQL: "
    "Flink SQL has no RANDOM_CUT_FOREST (nor any anomaly-score function); run the app on tidelake's own "
    "runtimes, or compile only its per-minute count (window = tumbling:60s, aggregates = [count]) " + DOCS
)
ANOMALY_SQL = (
    "app 'page-view-anomalies': RANDOM_CUT_FOREST in pump PAGE_VIEW_ANOMALIES_PUMP cannot run on Flink SQL: "
    "Flink SQL has no RANDOM_CUT_FOREST (nor any anomaly-score function); run the program on tidelake's own "
    "runtimes " + DOCS
)
KDA_SHAPE = (
    "the compiler translates KDA SQL programs of one tumbling-window pump (GROUP BY STEP(ROWTIME BY "
    "INTERVAL ...) or FLOOR(ROWTIME TO unit) and keys) from SOURCE_SQL_STREAM_001 into the output stream, "
    "with COUNT, SUM, MIN, MAX, AVG, WHERE, CASE, IS NULL, NOT, AND, OR, comparisons and + - *; "
    "write the app as a TOML spec, or run it on tidelake's own runtimes " + DOCS
)


def spec(**fields: Any) -> AppSpec:
    data: dict[str, Any] = {"name": "t", "window": "tumbling:60s", "aggregates": ["count"]}
    data.update(fields)
    return spec_from_mapping(data)


def compiled(**fields: Any) -> FlinkScript:
    return compile_flink_sql(spec(**fields), bootstrap_servers="kafka:9092")


def refusal(**fields: Any) -> str:
    with pytest.raises(FlinkUnsupported) as caught:
        compiled(**fields)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.exit_code == 2
    return str(caught.value)


# -- the shipped apps -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(shipped_specs()))
def test_each_shipped_app_compiles_to_its_script_or_is_refused(name: str) -> None:
    app_spec = shipped_specs()[name]
    if name == "page-view-anomalies":
        with pytest.raises(FlinkUnsupported) as caught:
            compile_flink_sql(app_spec, bootstrap_servers=SERVERS)
        assert str(caught.value) == ANOMALY_TOML
        return
    script = compile_flink_sql(app_spec, bootstrap_servers=SERVERS)
    assert script.text == (GOLDEN / f"{name}.sql").read_text()


@pytest.mark.parametrize("name", sorted(shipped_sql()))
def test_each_shipped_kda_sql_program_compiles_to_its_script_or_is_refused(name: str) -> None:
    app_spec = sql_app_spec(shipped_sql()[name])
    if name == "page-view-anomalies":
        with pytest.raises(FlinkUnsupported) as caught:
            compile_flink_sql(app_spec, bootstrap_servers=SERVERS)
        assert str(caught.value) == ANOMALY_SQL
        return
    script = compile_flink_sql(app_spec, bootstrap_servers=SERVERS)
    assert script.text == (GOLDEN / f"{name}.kda.sql").read_text()


def test_every_shipped_app_has_a_golden_script_or_a_refusal() -> None:
    goldens = {p.name for p in GOLDEN.glob("*.sql")}
    toml = {f"{n}.sql" for n in shipped_specs() if n != "page-view-anomalies"}
    sql = {f"{p.stem}.kda.sql" for p in SPECS_DIR.glob("*.sql") if p.stem != "page-view-anomalies"}
    assert goldens == toml | sql


def test_page_views_1m_statement_by_statement() -> None:
    """The worked example of docs/flink.md."""
    script = compile_flink_sql(shipped_specs()["page-views-1m"], bootstrap_servers=SERVERS)
    assert script.app == "page-views-1m"
    assert script.source_topic == "clickstream.events"
    assert script.sink_topic == "analytics.page-views-1m"
    assert script.source_group == "tidelake-flink-page-views-1m"
    assert script.transactional_id_prefix == "tidelake-flink-page-views-1m"
    assert script.statements == (
        "SET 'table.local-time-zone' = 'UTC'",
        "SET 'execution.checkpointing.interval' = '10000 ms'",
        "SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE'",
        "SET 'pipeline.name' = 'tidelake-page-views-1m'",
        "CREATE TABLE `page_views_1m_source` (\n"
        "    `event_time` STRING,\n"
        "    `page` STRING,\n"
        "    `__ts` AS TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)),\n"
        "    `__t` AS CAST(TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)) AS TIMESTAMP(3)),\n"
        "    WATERMARK FOR `__t` AS `__t` - INTERVAL '5.001' SECOND\n"
        ") WITH (\n"
        "    'connector' = 'kafka',\n"
        "    'topic' = 'clickstream.events',\n"
        "    'properties.bootstrap.servers' = '127.0.0.1:9092',\n"
        "    'properties.group.id' = 'tidelake-flink-page-views-1m',\n"
        "    'properties.auto.offset.reset' = 'earliest',\n"
        "    'properties.isolation.level' = 'read_committed',\n"
        "    'scan.startup.mode' = 'group-offsets',\n"
        "    'scan.watermark.idle-timeout' = '10000 ms',\n"
        "    'format' = 'json',\n"
        "    'json.ignore-parse-errors' = 'true',\n"
        "    'json.fail-on-missing-field' = 'false'\n"
        ")",
        "CREATE TABLE `page_views_1m_sink` (\n"
        "    `__message_key` STRING,\n"
        "    `page` STRING,\n"
        "    `window_start` STRING,\n"
        "    `window_end` STRING,\n"
        "    `count` BIGINT\n"
        ") WITH (\n"
        "    'connector' = 'kafka',\n"
        "    'topic' = 'analytics.page-views-1m',\n"
        "    'properties.bootstrap.servers' = '127.0.0.1:9092',\n"
        "    'properties.transaction.timeout.ms' = '600000',\n"
        "    'sink.delivery-guarantee' = 'exactly-once',\n"
        "    'sink.transactional-id-prefix' = 'tidelake-flink-page-views-1m',\n"
        "    'key.format' = 'raw',\n"
        "    'key.fields' = '__message_key',\n"
        "    'value.format' = 'json',\n"
        "    'value.fields-include' = 'EXCEPT_KEY'\n"
        ")",
        "CREATE VIEW `page_views_1m_events` AS\n"
        "SELECT `__t`, `__ts`, `page`\n"
        "FROM `page_views_1m_source`\n"
        "WHERE `__t` IS NOT NULL",
        "INSERT INTO `page_views_1m_sink`\n"
        "SELECT\n"
        f"    CONCAT(COALESCE(CAST(`page` AS STRING), ''), '|', DATE_FORMAT(window_start, {TIME})),\n"
        "    `page`,\n"
        f"    DATE_FORMAT(window_start, {TIME}),\n"
        f"    DATE_FORMAT(window_end, {TIME}),\n"
        "    COUNT(*)\n"
        "FROM TABLE(TUMBLE(TABLE `page_views_1m_events`, DESCRIPTOR(`__t`), INTERVAL '1' MINUTE))\n"
        "GROUP BY window_start, window_end, `page`",
    )
    assert script.insert == script.statements[-1]
    assert script.text.startswith(
        "-- tidelake stream app 'page-views-1m' as Flink SQL (tidelake stream export page-views-1m --to flink-sql).\n"
    )
    assert script.text.endswith("GROUP BY window_start, window_end, `page`;\n")
    assert "\n\nSET 'table.local-time-zone' = 'UTC';\n\nSET 'execution.checkpointing.interval'" in script.text


def test_checkpoint_interval_and_bootstrap_servers_are_the_callers() -> None:
    script = compile_flink_sql(spec(), bootstrap_servers="broker:29092", checkpoint_interval_s=2.5)
    assert script.statements[1] == "SET 'execution.checkpointing.interval' = '2500 ms'"
    assert script.statements[4].count("'properties.bootstrap.servers' = 'broker:29092'") == 1
    assert script.statements[5].count("'properties.bootstrap.servers' = 'broker:29092'") == 1


# -- windows ---------------------------------------------------------------------------------------
def test_tumbling_hopping_and_session_windows_are_window_tvfs() -> None:
    assert "FROM TABLE(TUMBLE(TABLE `t_events`, DESCRIPTOR(`__t`), INTERVAL '90' SECOND))\n" in (
        compiled(window="tumbling:90s").insert
    )
    assert (
        "FROM TABLE(HOP(TABLE `t_events`, DESCRIPTOR(`__t`), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))\n"
        in (compiled(window="hopping:5m/1m").insert)
    )
    session = compiled(window="session:30m", key_field="visitor_id").insert
    assert session == (
        "INSERT INTO `t_sink`\n"
        "SELECT\n"
        f"    CONCAT(COALESCE(CAST(`visitor_id` AS STRING), ''), '|', DATE_FORMAT(MIN(`__ts`), {TIME})),\n"
        "    `visitor_id`,\n"
        f"    DATE_FORMAT(MIN(`__ts`), {TIME}),\n"
        f"    DATE_FORMAT(MAX(`__ts`) + INTERVAL '30' MINUTE, {TIME}),\n"
        "    COUNT(*)\n"
        "FROM TABLE(SESSION(TABLE `t_events` PARTITION BY `visitor_id`, DESCRIPTOR(`__t`), "
        "INTERVAL '0 00:29:59.999' DAY TO SECOND(3)))\n"
        "GROUP BY window_start, window_end, `visitor_id`"
    )
    # a gap 1 ms shorter (Flink merges sessions whose windows touch) and a watermark 2 ms later
    unkeyed = compiled(window="session:10s")
    assert (
        "FROM TABLE(SESSION(TABLE `t_events`, DESCRIPTOR(`__t`), INTERVAL '9.999' SECOND))\n"
        in unkeyed.insert
    )
    assert "    WATERMARK FOR `__t` AS `__t` - INTERVAL '0.002' SECOND\n" in unkeyed.statements[4]


def test_sliding_windows_are_over_windows_of_the_size_less_a_millisecond() -> None:
    assert compiled(
        window="sliding:60s", key_field="visitor_id", aggregates=["count", "sum:bytes"]
    ).insert == (
        "INSERT INTO `t_sink`\n"
        "SELECT\n"
        "    CONCAT(COALESCE(CAST(`visitor_id` AS STRING), ''), '|', "
        f"DATE_FORMAT(`__ts` - INTERVAL '1' MINUTE, {TIME})),\n"
        "    `visitor_id`,\n"
        f"    DATE_FORMAT(`__ts` - INTERVAL '1' MINUTE, {TIME}),\n"
        f"    DATE_FORMAT(`__ts`, {TIME}),\n"
        "    COUNT(*) OVER w,\n"
        "    SUM(TRY_CAST(`bytes` AS BIGINT)) OVER w\n"
        "FROM `t_events`\n"
        "WINDOW w AS (PARTITION BY `visitor_id` ORDER BY `__t` RANGE BETWEEN INTERVAL '59.999' SECOND PRECEDING "
        "AND CURRENT ROW)"
    )


def test_the_watermark_is_the_lateness_plus_a_millisecond_and_the_idle_timeout_a_table_option() -> None:
    source = compiled(allowed_lateness="2m", idle_timeout="500ms").statements[4]
    assert "    WATERMARK FOR `__t` AS `__t` - INTERVAL '0 00:02:00.001' DAY TO SECOND(3)\n" in source
    assert "    'scan.watermark.idle-timeout' = '500 ms',\n" in source
    assert "    WATERMARK FOR `__t` AS `__t` - INTERVAL '0.001' SECOND\n" in compiled().statements[4]


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (60_000_000, "INTERVAL '1' MINUTE"),
        (90_000_000, "INTERVAL '90' SECOND"),
        (5_001_000, "INTERVAL '5.001' SECOND"),
        (1000, "INTERVAL '0.001' SECOND"),
        (7_200_000_000, "INTERVAL '2' HOUR"),
        (86_400_000_000 * 3, "INTERVAL '3' DAY"),
        (150_000_000, "INTERVAL '0 00:02:30.000' DAY TO SECOND(3)"),
        (86_400_000_000 * 120, "INTERVAL '120 00:00:00.000' DAY TO SECOND(3)"),
    ],
)
def test_intervals_fit_flinks_two_digit_default_precision(us: int, text: str) -> None:
    assert interval(us) == text


# -- aggregates, filters, keys ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spelling", "sql", "kind"),
    [
        ("count", "COUNT(*)", "BIGINT"),
        ("count_distinct:page", "COUNT(DISTINCT `page`)", "BIGINT"),
        ("sum:bytes", "SUM(TRY_CAST(`bytes` AS BIGINT))", "BIGINT"),
        ("sum:price", "SUM(TRY_CAST(`price` AS DOUBLE))", "DOUBLE"),
        ("avg:status", "AVG(TRY_CAST(`status` AS DOUBLE))", "DOUBLE"),
        ("min:status", "MIN(`status`)", "INT"),
        ("max:price", "MAX(`price`)", "DOUBLE"),
        ("first:page", "SUBSTRING(MIN(CONCAT(DATE_FORMAT(`__ts`, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), "
         "CAST(`page` AS STRING))) FROM 27)", "STRING"),
        ("last:status", "CAST(SUBSTRING(MAX(CONCAT(DATE_FORMAT(`__ts`, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), "
         "CAST(`status` AS STRING))) FROM 27) AS INT)", "INT"),
        ("duration", "CAST(MAX(`__us`) - MIN(`__us`) AS DOUBLE) / 1000000", "DOUBLE"),
    ],
)  # fmt: skip
def test_each_aggregate_as_flink_sql(spelling: str, sql: str, kind: str) -> None:
    types = {"page": "STRING", "bytes": "BIGINT", "status": "INT", "price": "DOUBLE"}
    assert aggregate_sql(parse_aggregate(spelling), types) == (sql, kind)


def test_top_n_is_counted_ranked_folded_and_joined_to_the_window() -> None:
    script = compiled(key_field="visitor_id", aggregates=["count", "top:2:page"])
    assert [s.split("\n")[0] for s in script.statements[4:]] == [
        "CREATE TABLE `t_source` (",
        "CREATE TABLE `t_sink` (",
        "CREATE VIEW `t_events` AS",
        "CREATE VIEW `t_windows` AS",
        "CREATE VIEW `t_top_counts` AS",
        "CREATE VIEW `t_top_ranked` AS",
        "CREATE VIEW `t_top` AS",
        "INSERT INTO `t_sink`",
    ]
    assert "    `top_2` ARRAY<ROW<`page` STRING, `count` BIGINT>>\n" in script.statements[5]
    assert script.statements[9] == (
        "CREATE VIEW `t_top_ranked` AS\n"
        "SELECT * FROM (\n"
        "    SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, `visitor_id` "
        "ORDER BY `__null`, `__c` DESC, `__v`) AS `__rank`\n"
        "    FROM `t_top_counts`)\n"
        "WHERE `__rank` <= 2"
    )
    assert script.insert == (
        "INSERT INTO `t_sink`\n"
        "SELECT\n"
        "    CONCAT(COALESCE(CAST(m.`visitor_id` AS STRING), ''), '|', m.`__start`),\n"
        "    m.`visitor_id`,\n"
        "    m.`__start`,\n"
        "    m.`__end`,\n"
        "    m.`__a0`,\n"
        "    ARRAY_SLICE(ARRAY[ROW(t.`__v1`, t.`__c1`), ROW(t.`__v2`, t.`__c2`)], 1, CAST(t.`__n` AS INT))\n"
        "FROM `t_windows` AS m\n"
        "JOIN `t_top` AS t ON m.window_start = t.window_start AND m.window_end = t.window_end "
        "AND m.`__jk` = t.`__jk`"
    )


def test_filters_and_derived_fields_are_in_the_events_view() -> None:
    script = compiled(
        source="web.logs",
        aggregates=["sum:is_error", "avg:latency"],
        filters=["is_bot = false", 'method != "HEAD"', "latency >= 0.5"],
        derive={"is_error": "status >= 400"},
    )
    assert script.statements[4].startswith(
        "CREATE TABLE `t_source` (\n"
        "    `event_time` STRING,\n"
        "    `is_bot` BOOLEAN,\n"
        "    `method` STRING,\n"
        "    `latency` DOUBLE,\n"
        "    `status` BIGINT,\n"
    )
    assert script.statements[6] == (
        "CREATE VIEW `t_events` AS\n"
        "SELECT `__t`, `__ts`, `is_bot`, `method`, `latency`, `status`, "
        "CASE WHEN `status` IS NULL THEN CAST(NULL AS INT) WHEN `status` >= 400 THEN 1 ELSE 0 END AS `is_error`\n"
        "FROM `t_source`\n"
        "WHERE `__t` IS NOT NULL AND `is_bot` = FALSE AND `method` <> 'HEAD' AND `latency` >= 0.5"
    )
    assert "    `sum_is_error` BIGINT,\n    `avg_latency` DOUBLE\n" in script.statements[5]


def test_clickstream_fields_take_their_schema_types_other_sources_their_use() -> None:
    on_clickstream = compiled(key_field="status", aggregates=["max:bytes"]).statements[4]
    assert "    `bytes` BIGINT,\n    `status` INT,\n" in on_clickstream
    elsewhere = compiled(source="other", key_field="status", aggregates=["max:bytes"]).statements[4]
    assert "    `bytes` DOUBLE,\n    `status` STRING,\n" in elsewhere
    overridden = compile_flink_sql(
        spec(source="other", aggregates=["max:bytes"]), bootstrap_servers="k:1",
        field_types_override={"bytes": "BIGINT"},
    ).statements[4]  # fmt: skip
    assert "    `bytes` BIGINT,\n" in overridden


def test_message_keys_are_the_engines() -> None:
    assert key_text("`k`", "STRING") == "COALESCE(CAST(`k` AS STRING), '')"
    assert key_text("`k`", "BOOLEAN") == "CASE WHEN `k` THEN 'True' WHEN NOT `k` THEN 'False' ELSE '' END"
    assert "    CONCAT('', '|', DATE_FORMAT(window_start, " in compiled().insert
    # a KDA SQL program's key is Python's text of its key tuple: ('/index',)
    assert _key_repr("`n`", "BIGINT") == "COALESCE(CAST(`n` AS STRING), 'None')"
    assert (
        _key_repr("`b`", "BOOLEAN")
        == "CASE WHEN `b` IS NULL THEN 'None' WHEN `b` THEN 'True' ELSE 'False' END"
    )
    text = _key_repr("`p`", "STRING")
    assert text.startswith("CASE WHEN `p` IS NULL THEN 'None' WHEN POSITION('''' IN `p`) > 0 AND POSITION('\"' IN `p`) = 0 THEN CONCAT('\"', ")  # fmt: skip
    assert text.endswith(", '''', '\\'''), '''') END")


# -- refusals ------------------------------------------------------------------------------------
def test_stagger_windows_are_refused() -> None:
    assert refusal(window="stagger:60s", key_field="visitor_id") == (
        "app 't': window = 'stagger:1m' (a stagger window) cannot run on Flink SQL: Flink has no stagger window "
        "(one that opens at a key's first event and lasts a fixed time); its SESSION window closes after a gap "
        "of inactivity instead, and its TUMBLE windows are aligned to the epoch, so either would give other "
        "windows " + DOCS
    )


def test_emit_changes_is_refused() -> None:
    assert refusal(emit="changes") == (
        "app 't': emit = \"changes\" cannot run on Flink SQL: Flink SQL's window aggregations emit one final "
        'row per window, never the updated rows of a window still open; use emit = "final" ' + DOCS
    )


def test_windows_and_lateness_below_a_millisecond_are_refused() -> None:
    assert refusal(window="tumbling:1500us") == (
        "app 't': the window cannot run on Flink SQL: the window tumbling:1500us is not a whole number of "
        "milliseconds: Flink's event time (a TIMESTAMP(3) rowtime) counts whole milliseconds " + DOCS
    )
    assert refusal(allowed_lateness="2500us") == (
        "app 't': allowed_lateness cannot run on Flink SQL: allowed_lateness 2500us is not a whole number of "
        "milliseconds: Flink's event time (a TIMESTAMP(3) rowtime) counts whole milliseconds " + DOCS
    )


def test_two_top_aggregates_and_top_over_a_sliding_window_are_refused() -> None:
    assert refusal(aggregates=["top:3:page", "top:5:status"]) == (
        "app 't': 2 top:N:F aggregates cannot run on Flink SQL: each top:N:F is a Window Top-N joined back to "
        "the window's row, and the compiler joins one; split the app in two (one top:N:F each) " + DOCS
    )
    assert refusal(window="sliding:60s", aggregates=["top:3:page"]) == (
        "app 't': top:N:F over a sliding window cannot run on Flink SQL: Flink SQL has no Top-N over an OVER "
        "window; use a tumbling or hopping window " + DOCS
    )


def _program(tmp_path: Path, text: str) -> AppSpec:
    path = tmp_path / "app.sql"
    path.write_text(text)
    return sql_app_spec(path)


OUT = 'CREATE STREAM "DESTINATION_SQL_STREAM" ("k" VARCHAR(8), "n" BIGINT);\n'


@pytest.mark.parametrize(
    ("pump", "construct"),
    [
        ('SELECT STREAM "k", COUNT(*) OVER w FROM "SOURCE_SQL_STREAM_001" '
         "WINDOW w AS (PARTITION BY \"k\" RANGE INTERVAL '5' MINUTE PRECEDING)",
         "a sliding window (OVER ... RANGE/ROWS PRECEDING) (KDA SQL)"),
        ('SELECT STREAM "k", COUNT(*) FROM "SOURCE_SQL_STREAM_001" '
         "GROUP BY \"k\", STEP(ROWTIME BY INTERVAL '60' SECOND) HAVING COUNT(*) > 2", "HAVING (KDA SQL)"),
        ('SELECT STREAM "k", 1 FROM "SOURCE_SQL_STREAM_001"', "a program without a windowed GROUP BY"),
        ('SELECT STREAM "k", COUNT(*) / 2 FROM "SOURCE_SQL_STREAM_001" '
         "GROUP BY \"k\", STEP(ROWTIME BY INTERVAL '60' SECOND)", "COUNT(*) / 2 (KDA SQL)"),
        ('SELECT STREAM UPPER("k"), COUNT(*) FROM "SOURCE_SQL_STREAM_001" '
         "GROUP BY UPPER(\"k\"), STEP(ROWTIME BY INTERVAL '60' SECOND)", 'UPPER("k") (KDA SQL)'),
    ],
)  # fmt: skip
def test_kda_sql_outside_the_translated_subset_is_refused_naming_the_construct(
    tmp_path: Path, pump: str, construct: str
) -> None:
    program = _program(tmp_path, OUT + f'CREATE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" {pump};\n')
    with pytest.raises(FlinkUnsupported) as caught:
        compile_flink_sql(program, bootstrap_servers=SERVERS)
    assert str(caught.value) == f"app 'app': {construct} cannot run on Flink SQL: {KDA_SHAPE}"


def test_kda_sql_stagger_windows_are_refused(tmp_path: Path) -> None:
    program = _program(
        tmp_path,
        OUT + 'CREATE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM "k", COUNT(*) '
        'FROM "SOURCE_SQL_STREAM_001" WINDOWED BY STAGGER (PARTITION BY "k" RANGE INTERVAL \'1\' MINUTE);\n',
    )
    with pytest.raises(FlinkUnsupported) as caught:
        compile_flink_sql(program, bootstrap_servers=SERVERS)
    assert str(caught.value).startswith(
        "app 'app': WINDOWED BY STAGGER (KDA SQL) cannot run on Flink SQL: Flink has no stagger window "
    )


def test_a_kda_sql_key_tuple_and_where_and_declared_column_order(tmp_path: Path) -> None:
    program = _program(
        tmp_path,
        'CREATE STREAM "DESTINATION_SQL_STREAM" ("page" VARCHAR(64), "st" INTEGER, "ws" TIMESTAMP, "n" BIGINT, '
        '"share" DOUBLE);\n'
        'CREATE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" ("ws", "page", "st", "n", "share") '
        'SELECT STREAM FLOOR(ROWTIME TO MINUTE), page, "status", COUNT(*), AVG(CASE WHEN "bytes" > 1000 '
        'THEN 1 ELSE 0 END) FROM "SOURCE_SQL_STREAM_001" WHERE NOT "is_bot" AND "status" IS NOT NULL '
        'GROUP BY FLOOR(ROWTIME TO MINUTE), page, "status";\n',
    )
    script = compile_flink_sql(program, bootstrap_servers=SERVERS)
    assert script.statements[6] == (
        "CREATE VIEW `app_events` AS\n"
        "SELECT `__t`, `__ts`, `page`, `status`, `is_bot`, `bytes`\n"
        "FROM `app_source`\n"
        "WHERE `__t` IS NOT NULL AND (NOT `is_bot` AND NOT `status` IS NULL)"
    )
    insert = script.insert
    assert insert.startswith(
        "INSERT INTO `app_sink`\nSELECT\n    CONCAT('(', CASE WHEN `page` IS NULL THEN 'None' "
    )
    assert ", ', ', COALESCE(CAST(`status` AS STRING), 'None'), ')|', DATE_FORMAT(window_start, " in insert
    assert insert.endswith(
        "    CAST(`page` AS STRING),\n"
        "    CAST(`status` AS BIGINT),\n"
        f"    DATE_FORMAT(window_start, {TIME}),\n"
        "    CAST(COUNT(*) AS BIGINT),\n"
        "    CAST(AVG(CAST(CASE WHEN `bytes` > 1000 THEN 1 ELSE 0 END AS DOUBLE)) AS DOUBLE)\n"
        "FROM TABLE(TUMBLE(TABLE `app_events`, DESCRIPTOR(`__t`), INTERVAL '1' MINUTE))\n"
        "GROUP BY window_start, window_end, `page`, `status`"
    )
    assert (
        "    `page` STRING,\n    `st` BIGINT,\n    `ws` STRING,\n    `n` BIGINT,\n    `share` DOUBLE\n"
        in (script.statements[5])
    )


# -- tidelake stream export --------------------------------------------------------------------------
def test_export_prints_the_script() -> None:
    done = CliRunner().invoke(app, ["stream", "export", "page-views-1m", "--to", "flink-sql", "-b", SERVERS])
    assert done.exit_code == 0, done.output
    assert done.stdout == (GOLDEN / "page-views-1m.sql").read_text()
    kda = CliRunner().invoke(app, ["stream", "export", "--sql", "error-rate-1m", "-b", SERVERS])
    assert kda.exit_code == 0, kda.output
    assert kda.stdout == (GOLDEN / "error-rate-1m.kda.sql").read_text()


def test_export_of_what_flink_cannot_express_is_the_clis_config_error() -> None:
    done = CliRunner().invoke(app, ["stream", "export", "page-view-anomalies", "--to", "flink-sql"])
    assert isinstance(done.exception, FlinkUnsupported)
    assert done.exception.exit_code == 2
    assert str(done.exception) == ANOMALY_TOML
    assert done.stdout == ""


def test_export_takes_one_app_and_only_flink_sql() -> None:
    for args in ([], ["page-views-1m", "--sql", "page-views-1m"]):
        done = CliRunner().invoke(app, ["stream", "export", *args])
        assert isinstance(done.exception, ConfigError)
        assert str(done.exception) == "give an app NAME or SPEC file, or --sql APP.sql (one of them)"
    done = CliRunner().invoke(
        app, ["stream", "export", "page-views-1m", "--to", "spark"], env={"NO_COLOR": "1"}
    )
    assert done.exit_code == 2
    assert "'spark' is not one of 'flink-sql'." in done.output
