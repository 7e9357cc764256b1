"""producers.kinesis_requests.parse_put_records: PutRecords' fast parser gives, for any body, the
answer the model gives (the same records, or the same error word for word); and
producers.kinesis_writes.shard_partitions routes as producers.kinesis_shards does."""

import json
import random

import pytest

from core.aws_json import AwsError, parse_request
from producers.kinesis_requests import PutRecordsCall, PutRecordsInput, _fast_put_records, parse_put_records
from producers.kinesis_shards import shard_for_hash_key, shard_for_key
from producers.kinesis_writes import shard_partitions


def _by_model(body: bytes) -> PutRecordsCall | tuple[str, str]:
    try:
        return PutRecordsCall.of(parse_request(PutRecordsInput, body))
    except AwsError as error:
        return error.code, error.text


def _by_parser(body: bytes) -> PutRecordsCall | tuple[str, str]:
    try:
        return parse_put_records(body)
    except AwsError as error:
        return error.code, error.text


def _same(left: PutRecordsCall | tuple[str, str], right: PutRecordsCall | tuple[str, str]) -> bool:
    if isinstance(left, PutRecordsCall) and isinstance(right, PutRecordsCall):
        return left.records == right.records and (left.stream.StreamName, left.stream.StreamARN) == (
            right.stream.StreamName,
            right.stream.StreamARN,
        )
    return left == right


GOOD = {"StreamName": "s.1_-x", "Records": [{"Data": "eA==", "PartitionKey": "k"}]}

BODIES = [
    json.dumps(GOOD),
    json.dumps({**GOOD, "Extra": {"nested": [1, 2.5, None]}}),
    json.dumps(
        {"StreamName": "s", "Records": [{"Data": "", "PartitionKey": "k" * 256, "ExplicitHashKey": None}]}
    ),
    json.dumps(
        {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k", "ExplicitHashKey": "0"}]}
    ),
    json.dumps(
        {
            "StreamName": "s",
            "Records": [{"Data": "eA==", "PartitionKey": "k", "ExplicitHashKey": str(2**128 - 1)}],
        }
    ),
    json.dumps({"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "ключ"}]}),
    json.dumps({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "Records": GOOD["Records"]}),
    json.dumps({"StreamName": "s", "StreamARN": None, "Records": GOOD["Records"]}),
    # what the model refuses, each in its own words
    "",
    "{",
    "[]",
    "null",
    '{"StreamName": "s"}',
    '{"StreamName": "s", "Records": []}',
    json.dumps({"StreamName": "s", "Records": GOOD["Records"] * 501}),
    json.dumps({"StreamName": "s", "Records": {"a": 1}}),
    json.dumps({"StreamName": "s", "Records": [5]}),
    json.dumps({"StreamName": "s", "Records": [{"PartitionKey": "k"}]}),
    json.dumps({"StreamName": "s", "Records": [{"Data": None, "PartitionKey": "k"}]}),
    json.dumps({"StreamName": "s", "Records": [{"Data": 5, "PartitionKey": "k"}]}),
    json.dumps({"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": ""}]}),
    json.dumps({"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k" * 257}]}),
    json.dumps({"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": 7}]}),
    json.dumps(
        {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k", "ExplicitHashKey": "01"}]}
    ),
    json.dumps(
        {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k", "ExplicitHashKey": "1" * 40}]}
    ),
    json.dumps(
        {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k", "ExplicitHashKey": "12\n"}]}
    ),
    json.dumps(
        {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k", "ExplicitHashKey": 12}]}
    ),
    json.dumps({"StreamName": "no spaces", "Records": GOOD["Records"]}),
    json.dumps({"StreamName": "s\n", "Records": GOOD["Records"]}),
    json.dumps({"StreamName": "", "Records": GOOD["Records"]}),
    json.dumps({"StreamName": "s" * 129, "Records": GOOD["Records"]}),
    json.dumps({"StreamName": 5, "Records": GOOD["Records"]}),
    json.dumps({"StreamARN": "not an arn", "Records": GOOD["Records"]}),
    '{"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "\\ud800"}]}',
    '{"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k"}], "N": NaN}',
]


@pytest.mark.parametrize("body", BODIES)
def test_the_fast_parser_answers_as_the_model(body: str) -> None:
    assert _same(_by_parser(body.encode()), _by_model(body.encode()))


def test_valid_bodies_take_the_fast_path() -> None:
    assert _fast_put_records(json.dumps(GOOD).encode()) is not None
    big = {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": f"k{i}"} for i in range(500)]}
    assert _fast_put_records(json.dumps(big).encode()) is not None


def test_shard_partitions_route_as_the_shard_rule() -> None:
    rng = random.Random(7)
    keys = [f"key-{rng.random()}" for _ in range(300)] + ["ключ", "k" * 256, "k"]
    hash_keys = [str(rng.randrange(2**128)) for _ in range(100)] + ["0", str(2**128 - 1)]
    records = [(b"", key, None) for key in keys] + [(b"", "k", h) for h in hash_keys]
    for shards in (1, 2, 3, 4, 5, 7, 64):
        expected = [shard_for_key(k, shards) for k in keys] + [
            shard_for_hash_key(int(h), shards) for h in hash_keys
        ]
        assert shard_partitions(records, shards) == expected
        assert shard_partitions(records, shards) == expected  # from the cache of hash keys


def test_an_explicit_hash_key_out_of_range_is_invalid() -> None:
    with pytest.raises(AwsError) as caught:
        shard_partitions([(b"", "k", str(2**128))], 4)
    assert caught.value.code == "InvalidArgumentException"
