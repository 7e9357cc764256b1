"""The query API's lifecycle through HTTP (FastAPI's test client, real DuckDB, a lake written here)."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from queries.api import create_app
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.service import QueryService
from tests.unit.queries_lake import event, write_events

LONG_QUERY = "SELECT count(*) FROM range(1000000000000) a"


def make_client(tmp_path: Path, concurrency: int = 2, token: str | None = None) -> Iterator[TestClient]:
    lake = tmp_path / "lake"
    write_events(lake, [event(f"2026-11-23T07:{m:02d}:00", f"v{m % 3}", f"/p{m % 4}") for m in range(60)])
    with Engine(lake, Limits(timeout_s=60), sessions=concurrency) as engine:
        service = QueryService(engine, ResultStore(tmp_path / "results"), concurrency)
        try:
            with TestClient(create_app(service, token), base_url="http://localhost") as client:
                yield client
        finally:
            service.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(tmp_path)


def athena(client: TestClient, action: str, **body: object) -> dict:
    response = client.post("/", json=body, headers={"X-Amz-Target": f"AmazonAthena.{action}"})
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(client: TestClient, query_id: str, states: tuple[str, ...], timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        execution = athena(client, "GetQueryExecution", QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] in states:
            return execution
        time.sleep(0.02)
    pytest.fail(f"query {query_id} did not reach {states} within {timeout_s} s; last: {execution['Status']}")


def start(client: TestClient, sql: str, **extra: object) -> str:
    return athena(client, "StartQueryExecution", QueryString=sql, **extra)["QueryExecutionId"]


def test_query_succeeds_with_statistics_and_csv_files(client: TestClient, tmp_path: Path) -> None:
    query_id = start(client, "SELECT page, count(*) AS views FROM clickstream_events GROUP BY 1 ORDER BY 1")
    execution = wait_for(client, query_id, ("SUCCEEDED", "FAILED"))
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert execution["Statistics"]["DataScannedInBytes"] > 0
    assert set(execution["Statistics"]) >= {"EngineExecutionTimeInMillis", "QueryQueueTimeInMillis"}
    csv = tmp_path / "results" / f"{query_id}.csv"
    assert csv.read_text().splitlines() == [
        '"page","views"',
        '"/p0","15"',
        '"/p1","15"',
        '"/p2","15"',
        '"/p3","15"',
    ]
    assert (tmp_path / "results" / f"{query_id}.csv.metadata").exists()
    rows = athena(client, "GetQueryResults", QueryExecutionId=query_id)["ResultSet"]["Rows"]
    assert rows[0] == {"Data": [{"VarCharValue": "page"}, {"VarCharValue": "views"}]}
    assert len(rows) == 5


def test_pagination_returns_every_row_exactly_once(client: TestClient) -> None:
    query_id = start(client, "SELECT i FROM range(2345) t(i) ORDER BY i")
    wait_for(client, query_id, ("SUCCEEDED",))
    seen, token, pages = [], None, []
    while True:
        body = {"QueryExecutionId": query_id, "MaxResults": 1000, **({"NextToken": token} if token else {})}
        page = athena(client, "GetQueryResults", **body)
        pages.append(len(page["ResultSet"]["Rows"]))
        seen += [row["Data"][0]["VarCharValue"] for row in page["ResultSet"]["Rows"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [1000, 1000, 346]
    assert seen == ["i", *[str(i) for i in range(2345)]]
    columns = page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
    assert [(c["Name"], c["Type"]) for c in columns] == [("i", "bigint")]


def test_refused_statement_fails_with_user_error_category(client: TestClient) -> None:
    query_id = start(client, "COPY (SELECT 1) TO 'x.csv'")
    status = wait_for(client, query_id, ("FAILED",))["Status"]
    assert status["AthenaError"]["ErrorCategory"] == 2
    assert status["StateChangeReason"].startswith("refused: COPY statements are not allowed")


def test_a_link_plus_dot_dot_cannot_read_the_server_environment(client: TestClient, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "r").symlink_to("/")  # the issue: over HTTP this read /proc/self/environ
    query_id = start(client, f"SELECT * FROM read_text('{lake}/r/../proc/self/environ')")
    status = wait_for(client, query_id, ("FAILED", "SUCCEEDED"))["Status"]
    assert status["State"] == "FAILED"
    assert status["StateChangeReason"] == (
        "refused: table function read_text() is not allowed: it reads files by path or runs SQL text; "
        "tidelake queries read the lake's tables by name (see `tidelake catalog`). Nothing was run or written."
    )


def test_stop_cancels_a_running_query(client: TestClient) -> None:
    query_id = start(client, LONG_QUERY)
    wait_for(client, query_id, ("RUNNING",))
    assert athena(client, "StopQueryExecution", QueryExecutionId=query_id) == {}
    status = wait_for(client, query_id, ("CANCELLED", "SUCCEEDED", "FAILED"))["Status"]
    assert status["State"] == "CANCELLED"
    assert status["StateChangeReason"] == "query cancelled: Query cancelled by user"


def test_queries_beyond_the_concurrency_limit_wait_in_queued(tmp_path: Path) -> None:
    for client in make_client(tmp_path, concurrency=1):
        first = start(client, LONG_QUERY)
        wait_for(client, first, ("RUNNING",))
        second = start(client, "SELECT 1")
        assert (
            athena(client, "GetQueryExecution", QueryExecutionId=second)["QueryExecution"]["Status"]["State"]
            == "QUEUED"
        )
        athena(client, "StopQueryExecution", QueryExecutionId=second)
        assert (
            wait_for(client, second, ("CANCELLED",))["Status"]["StateChangeReason"]
            == "Query cancelled by user"
        )
        athena(client, "StopQueryExecution", QueryExecutionId=first)
        wait_for(client, first, ("CANCELLED",))


def test_workgroup_cutoff_cancels_a_query_that_scans_more(client: TestClient, tmp_path: Path) -> None:
    blobs = pa.array([os.urandom(10_000) for _ in range(1_500)], pa.binary())
    big = tmp_path / "lake" / "blobs" / "dt=2026-11-23" / "part-0.parquet"
    big.parent.mkdir(parents=True)
    pq.write_table(pa.table({"blob": blobs}), big, compression="none")
    athena(client, "CreateWorkGroup", Name="capped", Configuration={"BytesScannedCutoffPerQuery": 10_000_000})
    capped = start(client, "SELECT sum(octet_length(blob)) AS n FROM blobs", WorkGroup="capped")
    execution = wait_for(client, capped, ("CANCELLED", "SUCCEEDED", "FAILED"))
    assert execution["Status"]["State"] == "CANCELLED", execution["Status"]
    assert execution["Status"]["StateChangeReason"] == "Query cancelled! : Bytes scanned limit was exceeded"
    assert execution["Statistics"]["DataScannedInBytes"] > 10_000_000
    uncapped = start(client, "SELECT sum(octet_length(blob)) AS n FROM blobs")
    assert wait_for(client, uncapped, ("SUCCEEDED", "FAILED", "CANCELLED"))["Status"]["State"] == "SUCCEEDED"
    rows = athena(client, "GetQueryResults", QueryExecutionId=uncapped)["ResultSet"]["Rows"]
    assert rows[1] == {"Data": [{"VarCharValue": "15000000"}]}


def test_results_of_an_unfinished_or_unknown_query_are_an_invalid_request(client: TestClient) -> None:
    response = client.post(
        "/", json={"QueryExecutionId": "nope"}, headers={"X-Amz-Target": "AmazonAthena.GetQueryResults"}
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "InvalidRequestException"
    assert response.json()["Message"] == "QueryExecution nope was not found"


def test_named_queries_create_get_list_delete(client: TestClient) -> None:
    created = athena(client, "CreateNamedQuery", Name="pages", QueryString="SELECT 1", Database="default")
    named_id = created["NamedQueryId"]
    got = athena(client, "GetNamedQuery", NamedQueryId=named_id)["NamedQuery"]
    assert (got["Name"], got["QueryString"], got["WorkGroup"]) == ("pages", "SELECT 1", "primary")
    assert athena(client, "ListNamedQueries")["NamedQueryIds"] == [named_id]
    athena(client, "DeleteNamedQuery", NamedQueryId=named_id)
    assert athena(client, "ListNamedQueries")["NamedQueryIds"] == []


def test_list_executions_newest_first(client: TestClient) -> None:
    ids = [start(client, f"SELECT {n}") for n in range(3)]
    for query_id in ids:
        wait_for(client, query_id, ("SUCCEEDED",))
    assert athena(client, "ListQueryExecutions")["QueryExecutionIds"] == list(reversed(ids))


def test_rest_view_runs_a_query_and_reports_its_cost(client: TestClient) -> None:
    query_id = client.post(
        "/api/queries", json={"sql": "SELECT count(*) AS n FROM clickstream_events"}
    ).json()["id"]
    wait_for(client, query_id, ("SUCCEEDED",))
    view = client.get(f"/api/queries/{query_id}").json()
    assert (view["state"], view["rows"], view["cost_usd"]) == ("SUCCEEDED", 1, 0.00005)
    page = client.get(f"/api/queries/{query_id}/results").json()
    assert page["rows"] == [["n"], ["60"]]
    assert page["next_token"] is None


def test_token_is_required_when_configured(tmp_path: Path) -> None:
    for client in make_client(tmp_path, token="s3cret"):
        assert client.get("/api/queries").status_code == 401
        assert client.get("/api/queries", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        denied = client.post("/", json={}, headers={"X-Amz-Target": "AmazonAthena.ListWorkGroups"})
        assert denied.json()["__type"] == "UnrecognizedClientException"
        signed = {
            "X-Amz-Target": "AmazonAthena.ListWorkGroups",
            "Authorization": "AWS4-HMAC-SHA256 Credential=s3cret/20261123/us-east-1/athena/aws4_request, Signature=x",
        }
        assert client.post("/", json={}, headers=signed).json()["WorkGroups"][0]["Name"] == "primary"


def test_console_root_is_left_as_a_placeholder(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "tidelake" in response.text
