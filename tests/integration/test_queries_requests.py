"""Malformed Athena requests are AWS's 400 InvalidRequestException, never a 500 (issue 14, item 3)."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from queries.api import MAX_BODY_BYTES, create_app
from queries.engine import Engine
from queries.results import ResultStore
from queries.service import QueryService
from tests.unit.queries_lake import event, write_events

AMZ = "application/x-amz-json-1.1"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    write_events(tmp_path / "lake", [event("2026-11-23T07:00:00", "v1", "/a")])
    with Engine(tmp_path / "lake") as engine:
        service = QueryService(engine, ResultStore(tmp_path / "results"))
        try:
            with TestClient(create_app(service), base_url="http://localhost") as opened:
                yield opened
        finally:
            service.close()


def post(client: TestClient, action: str, body: bytes | str) -> tuple[int, dict]:
    response = client.post(
        "/",
        content=body.encode() if isinstance(body, str) else body,
        headers={"X-Amz-Target": f"AmazonAthena.{action}", "Content-Type": AMZ},
    )
    return response.status_code, response.json()


def finished(client: TestClient, query_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, body = post(client, "GetQueryExecution", json.dumps({"QueryExecutionId": query_id}))
        if body["QueryExecution"]["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return body["QueryExecution"]
        time.sleep(0.05)
    raise AssertionError(f"query {query_id} did not finish in 30 s")


MALFORMED = {
    "QueryString a number": (
        "StartQueryExecution",
        '{"QueryString": 123}',
        "1 validation error detected: Value at 'QueryString' failed to satisfy constraint: "
        "Input should be a valid string",
    ),
    "QueryString a list": (
        "StartQueryExecution",
        '{"QueryString": ["SELECT 1"]}',
        "1 validation error detected: Value at 'QueryString' failed to satisfy constraint: "
        "Input should be a valid string",
    ),
    "QueryString an object": (
        "StartQueryExecution",
        '{"QueryString": {"sql": "SELECT 1"}}',
        "1 validation error detected: Value at 'QueryString' failed to satisfy constraint: "
        "Input should be a valid string",
    ),
    "QueryString NaN": (
        "StartQueryExecution",
        '{"QueryString": NaN}',
        "1 validation error detected: Value at 'QueryString' failed to satisfy constraint: "
        "Input should be a valid string",
    ),
    "QueryString missing": (
        "StartQueryExecution",
        "{}",
        "1 validation error detected: Value at 'QueryString' failed to satisfy constraint: Field required",
    ),
    "QueryString too long": (
        "StartQueryExecution",
        json.dumps({"QueryString": "x" * 262_145}),
        "1 validation error detected: Value at 'QueryString' failed to satisfy constraint: "
        "String should have at most 262144 characters",
    ),
    "100,000 nested lists": (
        "StartQueryExecution",
        "[" * 100_000,
        "1 validation error detected: the body must be one JSON object "
        "(Invalid JSON: recursion limit exceeded at line 1 column 202)",
    ),
    "not JSON": (
        "GetQueryExecution",
        "QueryExecutionId=x",
        "1 validation error detected: the body must be one JSON object "
        "(Invalid JSON: expected value at line 1 column 1)",
    ),
    "a list body": (
        "ListWorkGroups",
        "[]",
        "1 validation error detected: the body must be one JSON object (Input should be an object)",
    ),
    "NextToken a number": (
        "GetQueryResults",
        '{"QueryExecutionId": "x", "NextToken": 123}',
        "1 validation error detected: Value at 'NextToken' failed to satisfy constraint: "
        "Input should be a valid string",
    ),
    "MaxResults 0": (
        "GetQueryResults",
        '{"QueryExecutionId": "x", "MaxResults": 0}',
        "1 validation error detected: Value at 'MaxResults' failed to satisfy constraint: "
        "Input should be greater than or equal to 1",
    ),
    "MaxResults true": (
        "GetQueryResults",
        '{"QueryExecutionId": "x", "MaxResults": true}',
        "1 validation error detected: Value at 'MaxResults' failed to satisfy constraint: "
        "Input should be a valid integer",
    ),
    "Configuration a string": (
        "CreateWorkGroup",
        '{"Name": "wg", "Configuration": "x"}',
        "1 validation error detected: Value at 'Configuration' failed to satisfy constraint: "
        "Input should be an object",
    ),
    "cutoff under 10 MB": (
        "CreateWorkGroup",
        '{"Name": "wg", "Configuration": {"BytesScannedCutoffPerQuery": 5}}',
        "1 validation error detected: Value at 'Configuration.BytesScannedCutoffPerQuery' failed to "
        "satisfy constraint: Input should be greater than or equal to 10000000",
    ),
    "workgroup name with a slash": (
        "GetWorkGroup",
        '{"WorkGroup": "a/b"}',
        "1 validation error detected: Value at 'WorkGroup' failed to satisfy constraint: "
        "String should match pattern '^[a-zA-Z0-9._-]{1,128}$'",
    ),
    "empty batch": (
        "BatchGetQueryExecution",
        '{"QueryExecutionIds": []}',
        "1 validation error detected: Value at 'QueryExecutionIds' failed to satisfy constraint: "
        "List should have at least 1 item after validation, not 0",
    ),
    "short ClientRequestToken": (
        "StartQueryExecution",
        '{"QueryString": "SELECT 1", "ClientRequestToken": "abc"}',
        "1 validation error detected: Value at 'ClientRequestToken' failed to satisfy constraint: "
        "String should have at least 32 characters",
    ),
    "two errors": (
        "CreateNamedQuery",
        '{"Name": 1, "Database": "default"}',
        "2 validation errors detected: Value at 'Name' failed to satisfy constraint: Input should be a "
        "valid string; Value at 'QueryString' failed to satisfy constraint: Field required",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_body_is_an_invalid_request(client: TestClient, case: str) -> None:
    action, body, message = MALFORMED[case]
    status, answer = post(client, action, body)
    assert (status, answer) == (
        400,
        {"__type": "InvalidRequestException", "Message": message, "message": message},
    )


def test_a_body_over_the_cap_is_refused_unread(client: TestClient) -> None:
    status, answer = post(client, "StartQueryExecution", b" " * (MAX_BODY_BYTES + 1))
    assert status == 400
    assert answer["Message"] == "the request body is larger than 1,048,576 bytes"
    rest = client.post("/api/queries", content=b" " * (MAX_BODY_BYTES + 1), headers={"Content-Type": AMZ})
    assert rest.status_code == 413


def test_update_extensions_is_refused_not_a_crash(client: TestClient) -> None:
    _, started = post(client, "StartQueryExecution", json.dumps({"QueryString": "UPDATE EXTENSIONS"}))
    execution = finished(client, started["QueryExecutionId"])
    assert execution["Status"]["State"] == "FAILED"
    assert execution["Status"]["StateChangeReason"] == (
        "refused: UPDATE EXTENSIONS statements are not allowed; tidelake queries are read-only over the "
        "lake (allowed: SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE). Nothing was run or written."
    )
    assert execution["Status"]["AthenaError"]["ErrorCategory"] == 2


def test_client_request_token_reused_for_another_query_is_an_error(client: TestClient) -> None:
    token = "t" * 32
    _, first = post(
        client, "StartQueryExecution", json.dumps({"QueryString": "SELECT 1", "ClientRequestToken": token})
    )
    _, again = post(
        client, "StartQueryExecution", json.dumps({"QueryString": "SELECT 1", "ClientRequestToken": token})
    )
    assert again == first  # the same request again is the same execution
    status, other = post(
        client, "StartQueryExecution", json.dumps({"QueryString": "SELECT 2", "ClientRequestToken": token})
    )
    assert status == 400
    assert other["__type"] == "InvalidRequestException"
    assert other["Message"] == (
        f"Idempotent parameters do not match: ClientRequestToken {token} was used for query "
        f"{first['QueryExecutionId']} with another QueryString or WorkGroup; use a new token"
    )


def test_batch_get_lists_unknown_ids_as_unprocessed(client: TestClient) -> None:
    _, started = post(client, "StartQueryExecution", json.dumps({"QueryString": "SELECT 1"}))
    known = started["QueryExecutionId"]
    status, answer = post(
        client, "BatchGetQueryExecution", json.dumps({"QueryExecutionIds": [known, "nope", known]})
    )
    assert status == 200
    assert [e["QueryExecutionId"] for e in answer["QueryExecutions"]] == [known]
    assert answer["UnprocessedQueryExecutionIds"] == [
        {
            "QueryExecutionId": "nope",
            "ErrorCode": "InvalidRequestException",
            "ErrorMessage": "QueryExecution nope was not found",
        }
    ]
    _, named = post(client, "BatchGetNamedQuery", json.dumps({"NamedQueryIds": ["gone"]}))
    assert named == {
        "NamedQueries": [],
        "UnprocessedNamedQueryIds": [
            {
                "NamedQueryId": "gone",
                "ErrorCode": "InvalidRequestException",
                "ErrorMessage": "NamedQuery gone was not found",
            }
        ],
    }


def test_execution_parameters_follow_botocores_shape(client: TestClient) -> None:
    """ExecutionParameters: 1 or more strings of 1-1,024 characters; they are bound (test_athena_boto3)."""
    for bad in ([], [1], [""], ["x" * 1025]):
        body = json.dumps({"QueryString": "SELECT ?", "ExecutionParameters": bad})
        status, answer = post(client, "StartQueryExecution", body)
        assert (status, answer["__type"]) == (400, "InvalidRequestException"), bad
        assert "ExecutionParameters" in answer["Message"]
    status, answer = post(
        client,
        "StartQueryExecution",
        json.dumps({"QueryString": "SELECT ? AS x", "ExecutionParameters": ["1"]}),
    )
    assert status == 200 and set(answer) == {"QueryExecutionId"}
