"""core.aws_json: AWS's error shape and the two answers to a bad body, on the Kinesis models."""

import json

import pytest

from core.aws_json import AMZ_JSON_1_1, AwsError, error_response, parse_request
from producers.kinesis_api import CreateStreamInput, GetShardIteratorInput, PutRecordsInput


def _fails(model, body: bytes) -> AwsError:
    with pytest.raises(AwsError) as caught:
        parse_request(model, body)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize("body", [b"{", b"[]", b'"x"', b"null", b"\xff"])
def test_not_one_json_object_is_a_serialization_error(body: bytes) -> None:
    assert _fails(CreateStreamInput, body).code == "SerializationException"


def test_wrong_json_types_are_serialization_errors() -> None:
    error = _fails(CreateStreamInput, b'{"StreamName": "s", "ShardCount": "2"}')
    assert error.code == "SerializationException"
    assert "'shardCount'" in error.text
    assert (
        _fails(PutRecordsInput, b'{"StreamName": "s", "Records": {"a": 1}}').code == "SerializationException"
    )
    assert _fails(CreateStreamInput, b'{"StreamName": 5, "ShardCount": 1}').code == "SerializationException"


def test_constraints_are_validation_errors_worded_as_aws() -> None:
    records = [{"Data": "", "PartitionKey": "k"}] * 501
    error = _fails(PutRecordsInput, json.dumps({"StreamName": "s", "Records": records}).encode())
    assert error.code == "ValidationException"
    assert error.text == (
        "1 validation error detected: Value at 'records' failed to satisfy constraint: "
        "Member must have length less than or equal to 500"
    )
    key = "k" * 257
    error = _fails(
        PutRecordsInput,
        json.dumps({"StreamName": "s", "Records": [{"Data": "", "PartitionKey": key}]}).encode(),
    )
    assert error.text == (
        f"1 validation error detected: Value '{key}' at 'records.1.member.partitionKey' failed to satisfy "
        "constraint: Member must have length less than or equal to 256"
    )
    error = _fails(CreateStreamInput, b'{"StreamName": "bad name!", "ShardCount": 0}')
    assert error.text == (
        "2 validation errors detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '0' at 'shardCount' failed "
        "to satisfy constraint: Member must have value greater than or equal to 1"
    )
    error = _fails(GetShardIteratorInput, b'{"StreamName": "s", "ShardIteratorType": "OLDEST"}')
    assert error.code == "ValidationException"
    assert "Value null at 'shardId' failed to satisfy constraint: Member must not be null" in error.text
    assert (
        "Value 'OLDEST' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set"
        in error.text
    )


def test_members_aws_added_later_are_ignored() -> None:
    parsed = parse_request(
        CreateStreamInput, b'{"StreamName": "s", "ShardCount": 1, "WarmThroughputMiBps": 0}'
    )
    assert (parsed.StreamName, parsed.ShardCount) == ("s", 1)


def test_error_response_shape() -> None:
    response = error_response(
        AwsError("ResourceNotFoundException", "Stream s under account 000000000000 not found.")
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == AMZ_JSON_1_1
    assert json.loads(response.body) == {
        "__type": "ResourceNotFoundException",
        "Message": "Stream s under account 000000000000 not found.",
        "message": "Stream s under account 000000000000 not found.",
    }
