"""The Kinesis-style put API against the real broker: shapes, partial failures, retries, limits."""

from __future__ import annotations

import os

import pytest

from core.admin import create_topics
from core.errors import RecordError
from core.topics import TopicSpec
from producers.put_api import (
    HASH_KEY_SPACE,
    MAX_RECORDS,
    THROTTLED,
    ShardQuota,
    StreamClient,
    kafka_partition,
    kinesis_partition,
    put_records_with_retry,
)
from tests.integration.test_producers_replay import consume

pytestmark = pytest.mark.integration


@pytest.fixture
def client(kafka_bootstrap: str):
    with StreamClient(kafka_bootstrap) as stream_client:
        yield stream_client


def test_put_record_returns_the_shard_and_the_offset_as_sequence_number(
    client, kafka_bootstrap, make_topic
) -> None:
    topic = make_topic(partitions=4)
    first = client.put_record(topic, b'{"n": 1}', "visitor-42")
    second = client.put_record(topic, b'{"n": 2}', "visitor-42")
    partition = kafka_partition("visitor-42", 4)
    assert first == {"ShardId": f"shardId-{partition:012d}", "SequenceNumber": "0", "EncryptionType": "NONE"}
    assert second["SequenceNumber"] == "1"
    records = consume(kafka_bootstrap, topic, 2)
    assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
        (partition, 0, b"visitor-42", b'{"n": 1}'),
        (partition, 1, b"visitor-42", b'{"n": 2}'),
    ]


def test_put_records_answers_in_request_order_with_kinesis_routing(kafka_bootstrap, make_topic) -> None:
    topic = make_topic(partitions=4)
    keys = [f"k{i}" for i in range(20)]
    with StreamClient(kafka_bootstrap, routing="kinesis") as client:
        result = client.put_records(topic, [{"Data": key.encode(), "PartitionKey": key} for key in keys])
    assert result["FailedRecordCount"] == 0
    assert [e["ShardId"] for e in result["Records"]] == [
        f"shardId-{kinesis_partition(k, 4):012d}" for k in keys
    ]
    by_value = {(r.partition, r.offset): r.value for r in consume(kafka_bootstrap, topic, 20)}
    for key, entry in zip(keys, result["Records"], strict=True):
        assert by_value[(int(entry["ShardId"][-12:]), int(entry["SequenceNumber"]))] == key.encode()


def test_explicit_hash_key_picks_the_shard_whose_range_holds_it(client, make_topic) -> None:
    topic = make_topic(partitions=4)
    answer = client.put_record(topic, b"x", "any-key", explicit_hash_key=str(HASH_KEY_SPACE // 4 * 3 + 5))
    assert answer["ShardId"] == "shardId-000000000003"


def test_throttled_records_fail_alone_and_the_retry_helper_resends_only_them(
    kafka_bootstrap, make_topic
) -> None:
    topic = make_topic(partitions=1)
    now = [0.0]
    quota = ShardQuota(records_per_s=3, clock=lambda: now[0])
    records = [{"Data": f"r{i}".encode(), "PartitionKey": "same-key"} for i in range(5)]
    with StreamClient(kafka_bootstrap, quota=quota) as client:
        partial = client.put_records(topic, records)
        assert partial["FailedRecordCount"] == 2
        assert [e.get("ErrorCode") for e in partial["Records"]] == [None, None, None, THROTTLED, THROTTLED]
        assert "Rate exceeded for shard shardId-000000000000" in partial["Records"][3]["ErrorMessage"]

        sleeps: list[float] = []

        def sleep(seconds: float) -> None:  # time passes for the quota only
            sleeps.append(seconds)
            now[0] += seconds

        now[0] += 1.0
        retried = put_records_with_retry(client, topic, records[3:] + records[:1], sleep=sleep, backoff_s=0.5)
    assert retried["FailedRecordCount"] == 0
    assert sleeps == []  # three tokens back after one second: nothing to retry
    values = [r.value for r in consume(kafka_bootstrap, topic, 6)]
    assert values == [b"r0", b"r1", b"r2", b"r3", b"r4", b"r0"]


def test_retry_helper_backs_off_until_the_quota_admits_every_record(kafka_bootstrap, make_topic) -> None:
    topic = make_topic(partitions=1)
    now = [0.0]
    quota = ShardQuota(records_per_s=2, clock=lambda: now[0])
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    records = [{"Data": f"r{i}".encode(), "PartitionKey": "k"} for i in range(5)]
    with StreamClient(kafka_bootstrap, quota=quota) as client:
        result = put_records_with_retry(client, topic, records, sleep=sleep, backoff_s=0.5)
    assert result["FailedRecordCount"] == 0
    assert sleeps == [0.5, 1.0]  # 2 sent, then 1 (half a second refills one), then the last 2
    assert [int(e["SequenceNumber"]) for e in result["Records"]] == [0, 1, 2, 3, 4]
    assert sorted(r.value for r in consume(kafka_bootstrap, topic, 5)) == [r["Data"] for r in records]


def test_a_record_the_broker_refuses_fails_alone_as_internal_failure(client, kafka_bootstrap) -> None:
    topic = f"test.put-api-small-messages.{os.urandom(4).hex()}"
    create_topics(kafka_bootstrap, [TopicSpec(topic, 2, {"max.message.bytes": "2048"})])
    big = os.urandom(8_000)  # incompressible, over the topic's limit
    records = [
        {"Data": b"small-0", "PartitionKey": "a", "ExplicitHashKey": "0"},
        {"Data": big, "PartitionKey": "b", "ExplicitHashKey": str(HASH_KEY_SPACE - 1)},
        {"Data": b"small-1", "PartitionKey": "c", "ExplicitHashKey": "1"},
    ]
    result = client.put_records(topic, records)
    assert result["FailedRecordCount"] == 1
    assert result["Records"][1] == {
        "ErrorCode": "InternalFailure",
        "ErrorMessage": "Internal Service Failure",
    }
    assert [result["Records"][i]["SequenceNumber"] for i in (0, 2)] == ["0", "1"]
    assert [r.value for r in consume(kafka_bootstrap, topic, 2)] == [b"small-0", b"small-1"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"Data": b"x", "PartitionKey": "k"}] * (MAX_RECORDS + 1), "1 to 500 records, got 501"),
        ([], "1 to 500 records, got 0"),
        ([{"Data": b"x" * 1_000_000, "PartitionKey": "k"}] * 6, "limit is 5,242,880"),
        ([{"Data": b"x"}], "lacks PartitionKey"),
    ],
)
def test_requests_over_kinesis_limits_fail_whole(client, make_topic, records, message) -> None:
    topic = make_topic(partitions=1)
    with pytest.raises(RecordError, match=message):
        client.put_records(topic, records)


def test_unknown_stream_is_resource_not_found(client) -> None:
    with pytest.raises(RecordError, match="ResourceNotFoundException"):
        client.put_record(f"test.no-such-stream.{os.urandom(4).hex()}", b"x", "k")
