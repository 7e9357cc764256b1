"""Real Athena clients, unchanged, against `tidelake serve`: boto3's athena client and PyAthena."""

import time
from collections.abc import Iterator

import boto3
import pytest
from pyathena import connect
from pyathena.error import OperationalError

from tests.aws_endpoints import serve_process
from tests.unit.queries_lake import event, write_events

SERVE_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("athena")
    events = [
        event(f"2026-11-23T{h:02d}:{m:02d}:00", f"v{m % 7}", f"/p{m % 30}") for h in (7, 8) for m in range(60)
    ]
    write_events(root / "lake", events)
    env = {"TIDELAKE_QUERY__RESULTS_DIR": str(root / "results"), "TIDELAKE_QUERY__TIMEOUT_S": "60"}
    with serve_process(root / "lake", root / "serve.log", env=env, timeout_s=SERVE_TIMEOUT_S) as url:
        yield url


@pytest.fixture
def athena(endpoint: str):
    return boto3.client(
        "athena",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _wait(athena, query_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        time.sleep(0.05)
    pytest.fail(f"query {query_id} did not finish within 30 s")


def test_boto3_runs_a_query_and_pages_through_every_row(athena) -> None:
    sql = "SELECT page, count(*) AS views FROM clickstream_events GROUP BY 1 ORDER BY 1"
    query_id = athena.start_query_execution(QueryString=sql, WorkGroup="primary")["QueryExecutionId"]
    execution = _wait(athena, query_id)
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert execution["Statistics"]["DataScannedInBytes"] > 0
    pages = athena.get_paginator("get_query_results").paginate(
        QueryExecutionId=query_id, PaginationConfig={"PageSize": 7}
    )
    rows = [[d.get("VarCharValue") for d in r["Data"]] for page in pages for r in page["ResultSet"]["Rows"]]
    assert rows[0] == ["page", "views"]
    assert sorted(rows[1:]) == sorted([f"/p{n}", "4"] for n in range(30))


def test_boto3_stop_named_queries_workgroups_and_listing(athena) -> None:
    long_id = athena.start_query_execution(QueryString="SELECT count(*) FROM range(1000000000000) a")[
        "QueryExecutionId"
    ]
    athena.stop_query_execution(QueryExecutionId=long_id)
    assert _wait(athena, long_id)["Status"]["State"] == "CANCELLED"
    assert long_id in athena.list_query_executions()["QueryExecutionIds"]
    named_id = athena.create_named_query(Name="views", Database="default", QueryString="SELECT 1")[
        "NamedQueryId"
    ]
    assert athena.get_named_query(NamedQueryId=named_id)["NamedQuery"]["QueryString"] == "SELECT 1"
    athena.delete_named_query(NamedQueryId=named_id)
    assert named_id not in athena.list_named_queries()["NamedQueryIds"]
    athena.create_work_group(Name="capped", Configuration={"BytesScannedCutoffPerQuery": 10_000_000})
    config = athena.get_work_group(WorkGroup="capped")["WorkGroup"]["Configuration"]
    assert config["BytesScannedCutoffPerQuery"] == 10_000_000


def test_boto3_sees_a_refused_statement_fail(athena) -> None:
    query_id = athena.start_query_execution(QueryString="SELECT * FROM read_csv('/etc/passwd')")[
        "QueryExecutionId"
    ]
    status = _wait(athena, query_id)["Status"]
    assert status["State"] == "FAILED"
    assert status["AthenaError"]["ErrorCategory"] == 2
    with pytest.raises(athena.exceptions.InvalidRequestException, match="Current state: FAILED"):
        athena.get_query_results(QueryExecutionId=query_id)


def test_pyathena_fetches_typed_rows(endpoint: str) -> None:
    cursor = connect(
        s3_staging_dir="s3://unused/",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        work_group="primary",
    ).cursor()
    cursor.execute(
        "SELECT hour, count(*) AS n, min(event_time) AS first_seen, bool_or(is_bot) AS bots "
        "FROM clickstream_events GROUP BY hour ORDER BY hour"
    )
    assert [d[:2] for d in cursor.description] == [
        ("hour", "integer"),
        ("n", "bigint"),
        ("first_seen", "timestamp"),
        ("bots", "boolean"),
    ]
    import datetime as dt

    assert cursor.fetchall() == [
        (7, 60, dt.datetime(2026, 11, 23, 7, 0), False),
        (8, 60, dt.datetime(2026, 11, 23, 8, 0), False),
    ]
    assert cursor.data_scanned_in_bytes > 0


def test_pyathena_raises_for_a_refused_statement(endpoint: str) -> None:
    cursor = connect(
        s3_staging_dir="s3://unused/",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).cursor()
    with pytest.raises(OperationalError, match="refused: DROP statements are not allowed"):
        cursor.execute("DROP VIEW clickstream_events")
