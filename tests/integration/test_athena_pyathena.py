"""PyAthena and awswrangler, unchanged, against the real query app served in a thread with S3 in front
(as `tidelake serve` mounts it, results in the bucket tidelake-query-results): qmark and pyformat
parameters, PandasCursor's DataFrames (read from S3), and the SQLAlchemy dialect's reflection
(ListDatabases, ListTableMetadata, GetTableMetadata)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import awswrangler as wr
import boto3
import duckdb
import pytest
import sqlalchemy
from pyathena import connect
from pyathena.error import DatabaseError
from pyathena.pandas.cursor import PandasCursor

from core.settings import load_settings
from queries.api import create_app
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.s3_api import RESULTS_BUCKET, s3_app, s3_in_front
from queries.service import QueryService
from tests.aws_endpoints import endpoint_in_thread
from tests.unit.queries_lake import event, write_events

EVENTS = [
    event(f"2026-11-23T{h:02d}:{m:02d}:00", f"v{m % 4}", f"/p{m % 3}", status=404 if m % 10 == 0 else 200)
    for h in (7, 8)
    for m in range(30)
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyathena")
    write_events(root / "lake", EVENTS)
    return root


@pytest.fixture(scope="module")
def endpoint(lake: Path) -> Iterator[str]:
    settings = load_settings(
        lake={"root": lake / "lake"},
        runtime={"state_dir": lake / "state"},
        query={"results_dir": lake / "results"},
    )
    with Engine(lake / "lake", Limits(timeout_s=60), sessions=2) as engine:
        service = QueryService(
            engine, ResultStore(lake / "results"), 2, results_uri=f"s3://{RESULTS_BUCKET}/"
        )
        try:
            with endpoint_in_thread(s3_in_front(s3_app(settings), create_app(service))) as url:
                yield url
        finally:
            service.close()


def cursor(endpoint: str, **extra):
    return connect(
        s3_staging_dir=f"s3://{RESULTS_BUCKET}/",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        **extra,
    ).cursor()


BY_STATUS = "SELECT page, count(*) AS n FROM clickstream_events WHERE status = {} GROUP BY page ORDER BY page"


def test_qmark_parameters_go_as_execution_parameters(endpoint: str) -> None:
    c = cursor(endpoint)
    c.execute(BY_STATUS.format("?"), ["404"], paramstyle="qmark")
    assert c.fetchall() == [("/p0", 2), ("/p1", 2), ("/p2", 2)]
    assert c.execution_parameters == ["404"]
    c.execute(
        "SELECT count(*) FROM clickstream_events WHERE page = ? AND dt = ?",
        ["'/p1'", "DATE '2026-11-23'"],
        paramstyle="qmark",
    )
    assert c.fetchall() == [(20,)]


def test_qmark_with_a_wrong_count_raises_athenas_message(endpoint: str) -> None:
    with pytest.raises(DatabaseError, match="Incorrect number of parameters: expected 1 but found 2"):
        cursor(endpoint).execute(BY_STATUS.format("?"), ["404", "200"], paramstyle="qmark")


def test_pyformat_parameters_are_formatted_by_pyathena(endpoint: str) -> None:
    c = cursor(endpoint)
    c.execute(
        "SELECT count(*) FROM clickstream_events WHERE status = %(status)d AND page = %(page)s AND dt = %(day)s",
        {"status": 200, "page": "/p2", "day": dt.date(2026, 11, 23)},
    )
    assert c.fetchall() == [(18,)]
    assert c.execution_parameters == []


def test_prepared_statement_from_pyathena(endpoint: str) -> None:
    c = cursor(endpoint)
    c._connection.client.create_prepared_statement(
        StatementName="pyathena_by_status", WorkGroup="primary", QueryStatement=BY_STATUS.format("?")
    )
    c.execute("EXECUTE pyathena_by_status USING 404")
    assert c.fetchall() == [("/p0", 2), ("/p1", 2), ("/p2", 2)]


def expected_from_duckdb(lake: Path, sql: str) -> list[tuple]:
    files = str(lake / "lake" / "clickstream_events" / "**" / "*.parquet")
    view = f"read_parquet('{files}', hive_partitioning = true, hive_types = {{'dt': DATE, 'hour': INTEGER}})"
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        return db.execute(sql.replace("clickstream_events", view)).fetchall()


DATAFRAME_SQL = (
    "SELECT hour, page, count(*) AS n, min(event_time)::TIMESTAMP AS first_seen "
    "FROM clickstream_events GROUP BY 1, 2 ORDER BY 1, 2"
)


def test_pandas_cursor_reads_the_result_from_s3_equal_to_duckdb(
    endpoint: str, lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # PyAthena's S3 client; endpoint_url is Athena's
    c = cursor(endpoint, cursor_class=PandasCursor)
    frame = c.execute(DATAFRAME_SQL).as_pandas()
    assert c.output_location == f"s3://{RESULTS_BUCKET}/{c.query_id}.csv"
    assert list(frame.columns) == ["hour", "page", "n", "first_seen"]
    assert [tuple(row) for row in frame.itertuples(index=False)] == expected_from_duckdb(lake, DATAFRAME_SQL)
    assert len(frame) == 6


# awswrangler 3.17 (s3/_read.py) calls pandas.concat(copy=False), which pandas 3 deprecates: its warning, not ours
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_awswrangler_reads_a_qmark_query(endpoint: str, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wr.config, "athena_endpoint_url", endpoint)
    monkeypatch.setattr(wr.config, "s3_endpoint_url", endpoint)
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    frame = wr.athena.read_sql_query(
        BY_STATUS.format("?"),
        database="default",
        ctas_approach=False,
        boto3_session=session,
        s3_output=f"s3://{RESULTS_BUCKET}/",
        params=["404"],
        paramstyle="qmark",
    )
    assert [tuple(row) for row in frame.itertuples(index=False)] == [("/p0", 2), ("/p1", 2), ("/p2", 2)]
    assert [tuple(r) for r in frame.itertuples(index=False)] == expected_from_duckdb(
        lake, BY_STATUS.format("404")
    )


def test_sqlalchemy_reflects_the_lake(endpoint: str) -> None:
    url = (
        "awsathena+rest://local:local@athena.us-east-1.amazonaws.com:443/default"
        f"?s3_staging_dir={quote_plus(f's3://{RESULTS_BUCKET}/')}&endpoint_url={quote_plus(endpoint)}"
    )
    engine = sqlalchemy.create_engine(url)
    try:
        inspector = sqlalchemy.inspect(engine)
        assert inspector.get_schema_names() == ["default"]
        assert inspector.get_table_names(schema="default") == ["clickstream_events"]
        columns = inspector.get_columns("clickstream_events", schema="default")
        assert [
            (c["name"], str(c["type"]), c["dialect_options"]["awsathena_partition"]) for c in columns
        ] == [
            ("event_id", "VARCHAR", None),
            ("event_time", "TIMESTAMP", None),
            ("visitor_id", "VARCHAR", None),
            ("method", "VARCHAR", None),
            ("url", "VARCHAR", None),
            ("page", "VARCHAR", None),
            ("referrer", "VARCHAR", None),
            ("status", "INTEGER", None),
            ("bytes", "BIGINT", None),
            ("user_agent", "VARCHAR", None),
            ("is_bot", "BOOLEAN", None),
            ("source", "VARCHAR", None),
            ("dt", "DATE", True),
            ("hour", "INTEGER", True),
        ]
        assert inspector.has_table("clickstream_events", schema="default")
        assert not inspector.has_table("nope", schema="default")
        with engine.connect() as connection:
            table = sqlalchemy.Table("clickstream_events", sqlalchemy.MetaData(), autoload_with=connection)
            query = sqlalchemy.select(sqlalchemy.func.count()).where(table.c.status == 404)
            assert connection.execute(query).scalar() == 6
    finally:
        engine.dispose()
