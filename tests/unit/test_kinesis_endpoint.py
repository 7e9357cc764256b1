"""tidelake.aws_endpoint: dispatch on X-Amz-Target, the token rule, the body cap, AWS's error shape
for every failure (a bug included); and a Kinesis action without a broker."""

import pytest
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from core.aws_json import AwsError
from producers.kinesis_api import KinesisService, kinesis_actions
from tidelake.aws_endpoint import MAX_BODY_BYTES, aws_endpoint


async def _fallback(scope, receive, send) -> None:
    await PlainTextResponse("fallback")(scope, receive, send)


def _boom(body: bytes) -> dict:
    raise RuntimeError("a bug")


def _missing(body: bytes) -> dict:
    raise AwsError("ResourceNotFoundException", "Stream s under account 000000000000 not found.")


TABLE = {"Echo": lambda body: {"Length": len(body)}, "Boom": _boom, "Missing": _missing}
SIGNED = (
    "AWS4-HMAC-SHA256 Credential=tok/20261130/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0"
)


@pytest.fixture
def client() -> TestClient:
    app = aws_endpoint(_fallback, {"Kinesis_20131202": TABLE}, token="tok", allowed_hosts=["testserver"])
    return TestClient(app, raise_server_exceptions=False)


def _post(client: TestClient, action: str, body: bytes = b"{}", **headers: str):
    return client.post(
        "/", content=body, headers={"X-Amz-Target": action, "Authorization": SIGNED, **headers}
    )


def test_dispatch_and_answers(client: TestClient) -> None:
    answer = _post(client, "Kinesis_20131202.Echo", b'{"a": 1}')
    assert (answer.status_code, answer.json()) == (200, {"Length": 8})
    assert answer.headers["content-type"] == "application/x-amz-json-1.1"
    missing = _post(client, "Kinesis_20131202.Missing")
    assert (missing.status_code, missing.json()["__type"]) == (400, "ResourceNotFoundException")
    boom = _post(client, "Kinesis_20131202.Boom")
    assert boom.status_code == 500
    assert boom.json() == {
        "__type": "InternalFailureException",
        "Message": "Internal Service Failure",
        "message": "Internal Service Failure",
    }
    unknown = _post(client, "Kinesis_20131202.SplitShard")
    assert (unknown.status_code, unknown.json()["__type"]) == (400, "UnknownOperationException")
    assert _post(client, "AmazonAthena.ListWorkGroups").text == "fallback"
    assert _post(client, "Firehose_20150804.PutRecord").text == "fallback"
    assert client.get("/").text == "fallback"


def test_token_rule(client: TestClient) -> None:
    bearer = _post(client, "Kinesis_20131202.Echo", Authorization="Bearer tok")
    assert bearer.status_code == 200
    wrong = _post(client, "Kinesis_20131202.Echo", Authorization=SIGNED.replace("=tok/", "=other/"))
    assert (wrong.status_code, wrong.json()["__type"]) == (400, "UnrecognizedClientException")
    unsigned = client.post("/", content=b"{}", headers={"X-Amz-Target": "Kinesis_20131202.Echo"})
    assert unsigned.json()["__type"] == "UnrecognizedClientException"


def test_body_cap_and_hosts(client: TestClient) -> None:
    big = _post(client, "Kinesis_20131202.Echo", b" " * (MAX_BODY_BYTES + 1))
    assert (big.status_code, big.json()["__type"]) == (400, "InvalidArgumentException")
    assert _post(client, "Kinesis_20131202.Echo", b" " * MAX_BODY_BYTES).json() == {"Length": MAX_BODY_BYTES}
    foreign = _post(client, "Kinesis_20131202.Echo", Host="evil.example")
    assert foreign.status_code == 400


def test_no_broker_is_an_internal_failure() -> None:
    service = KinesisService("127.0.0.1:9", timeout_s=1.0)
    try:
        with pytest.raises(AwsError) as caught:
            kinesis_actions(service)["ListStreams"](b"{}")
    finally:
        service.close()
    assert (caught.value.code, caught.value.status) == ("InternalFailureException", 500)
    assert "no Kafka broker answers at 127.0.0.1:9" in caught.value.text
