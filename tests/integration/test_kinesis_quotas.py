"""Shard quotas through the real API: boto3 (retries off) against the AWS endpoint, a real broker,
and the test's clock, so buckets refill only when a test moves it.

Three services: AWS's quotas, small custom ones (the read-byte debt without megabytes of data),
and none (the default: nothing is throttled).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from botocore.exceptions import ClientError
from kafka import KafkaConsumer, TopicPartition

from producers.kinesis_api import KinesisService, kinesis_actions
from producers.kinesis_quotas import ShardQuotas
from producers.kinesis_registry import StreamRegistry
from tests.aws_endpoints import aws_client, endpoint_in_thread, stand_in_query_app
from tidelake.aws_endpoint import aws_endpoint

T0 = 1_796_000_000.0  # 2026-11-30
ACCOUNT = "000000000000"
SHARD_0_KEY = "0"  # ExplicitHashKey of shard 0 of any stream
SHARD_1_OF_2_KEY = str(2**127)  # ExplicitHashKey of shard 1 of a 2-shard stream


class Clock:
    """Epoch seconds that move only when a test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Served(NamedTuple):
    kinesis: Any  # boto3's kinesis client, retries off
    clock: Clock  # the service's clock
    quotas: ShardQuotas | None  # the service's quotas


@contextlib.contextmanager
def _served(bootstrap: str, quotas: ShardQuotas | None) -> Iterator[Served]:
    clock = Clock(T0)
    service = KinesisService(bootstrap, registry=StreamRegistry(None), clock=clock, quotas=quotas)
    app = aws_endpoint(stand_in_query_app, {"Kinesis_20131202": kinesis_actions(service)})
    try:
        with endpoint_in_thread(app) as url:
            yield Served(aws_client("kinesis", url, attempts=0), clock, quotas)  # attempts=0: no retries
    finally:
        service.close()


@pytest.fixture(scope="module")
def aws_quotas(kafka_bootstrap: str) -> Iterator[Served]:
    with _served(kafka_bootstrap, ShardQuotas.aws_defaults()) as served:
        yield served


@pytest.fixture(scope="module")
def small_quotas(kafka_bootstrap: str) -> Iterator[Served]:
    with _served(kafka_bootstrap, ShardQuotas(read_bytes_per_s=1_000)) as served:
        yield served


@pytest.fixture(scope="module")
def no_quotas(kafka_bootstrap: str) -> Iterator[Served]:
    with _served(kafka_bootstrap, None) as served:
        yield served


@pytest.fixture
def streams() -> Iterator[Callable[[object, int], str]]:
    """`make(kinesis, shards)` -> the name of a new stream, deleted after the test."""
    made: list[tuple[object, str]] = []

    def make(kinesis, shards: int = 1) -> str:
        name = f"test.quotas.{uuid.uuid4().hex[:10]}"
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        made.append((kinesis, name))
        return name

    yield make
    for kinesis, name in made:
        with contextlib.suppress(ClientError):
            kinesis.delete_stream(StreamName=name)


def _throttled(stream: str, shard: int) -> dict[str, str]:
    return {
        "ErrorCode": "ProvisionedThroughputExceededException",
        "ErrorMessage": f"Rate exceeded for shard shardId-{shard:012d} in stream {stream} under account {ACCOUNT}.",
    }


def _put(kinesis, stream: str, count: int, data: bytes = b"x" * 10, hash_key: str = SHARD_0_KEY) -> dict:
    records = [{"Data": data, "PartitionKey": "k", "ExplicitHashKey": hash_key} for _ in range(count)]
    return kinesis.put_records(StreamName=stream, Records=records)


def _end_offsets(bootstrap: str, stream: str, shards: int) -> list[int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(stream, p) for p in range(shards)]
        ends = consumer.end_offsets(tps)
        return [ends[tp] for tp in tps]
    finally:
        consumer.close()


def _iterator(kinesis, stream: str, shard: int = 0) -> str:
    return kinesis.get_shard_iterator(
        StreamName=stream, ShardId=f"shardId-{shard:012d}", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]


# -- writes --------------------------------------------------------------------------------------
def test_put_records_throttles_the_1001st_record_of_a_second(aws_quotas, streams, kafka_bootstrap) -> None:
    kinesis, clock, _ = aws_quotas
    stream = streams(kinesis, 2)
    clock.now = T0 + 100
    assert _put(kinesis, stream, 500)["FailedRecordCount"] == 0
    assert _put(kinesis, stream, 499)["FailedRecordCount"] == 0
    mixed = _put(kinesis, stream, 3)
    assert mixed["FailedRecordCount"] == 2
    assert mixed["Records"][0]["ShardId"] == "shardId-000000000000"
    assert "ErrorCode" not in mixed["Records"][0]
    assert mixed["Records"][1:] == [_throttled(stream, 0), _throttled(stream, 0)]
    # shard 1 has its own second
    assert _put(kinesis, stream, 500, hash_key=SHARD_1_OF_2_KEY)["FailedRecordCount"] == 0
    # half a second refills 500 records, no more
    clock.now = T0 + 100.5
    refilled = _put(kinesis, stream, 500)
    assert refilled["FailedRecordCount"] == 0
    assert _put(kinesis, stream, 1)["Records"] == [_throttled(stream, 0)]
    # a full second refills the shard whole
    clock.now = T0 + 101.5
    assert _put(kinesis, stream, 500)["FailedRecordCount"] == 0
    assert _put(kinesis, stream, 500)["FailedRecordCount"] == 0
    assert _put(kinesis, stream, 1)["FailedRecordCount"] == 1
    # only the accepted records reached Kafka
    assert _end_offsets(kafka_bootstrap, stream, 2) == [500 + 499 + 1 + 500 + 1_000, 500]


def test_put_records_throttles_past_one_mib_a_second(aws_quotas, streams, kafka_bootstrap) -> None:
    kinesis, clock, _ = aws_quotas
    stream = streams(kinesis, 1)
    clock.now = T0 + 200
    quarter = b"q" * (256 * 1024 - 1)  # + the 1-byte key: a quarter of a MiB
    answer = _put(kinesis, stream, 5, data=quarter)
    assert answer["FailedRecordCount"] == 1
    assert [r.get("ShardId") for r in answer["Records"][:4]] == ["shardId-000000000000"] * 4
    assert answer["Records"][4] == _throttled(stream, 0)
    assert _put(kinesis, stream, 1, data=b"")["FailedRecordCount"] == 1  # not one byte is left
    clock.now = T0 + 200.25  # a quarter of a second: one more quarter MiB
    assert _put(kinesis, stream, 2, data=quarter)["FailedRecordCount"] == 1
    assert _end_offsets(kafka_bootstrap, stream, 1) == [5]


def test_put_record_raises_provisioned_throughput_exceeded(aws_quotas, streams) -> None:
    kinesis, clock, _ = aws_quotas
    stream = streams(kinesis, 1)
    clock.now = T0 + 300
    assert _put(kinesis, stream, 500)["FailedRecordCount"] == 0
    assert _put(kinesis, stream, 499)["FailedRecordCount"] == 0
    kinesis.put_record(StreamName=stream, Data=b"1000th", PartitionKey="k")
    with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException) as caught:
        kinesis.put_record(StreamName=stream, Data=b"1001st", PartitionKey="k")
    response = caught.value.response
    assert response["Error"] == {
        "Code": "ProvisionedThroughputExceededException",
        "Message": f"Rate exceeded for shard shardId-000000000000 in stream {stream} under account {ACCOUNT}.",
    }
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    clock.now = T0 + 300.001
    assert kinesis.put_record(StreamName=stream, Data=b"next", PartitionKey="k")["ShardId"] == (
        "shardId-000000000000"
    )


# -- reads ---------------------------------------------------------------------------------------
def test_get_records_is_five_calls_a_second_per_shard(aws_quotas, streams) -> None:
    kinesis, clock, _ = aws_quotas
    stream = streams(kinesis, 2)
    clock.now = T0 + 400
    _put(kinesis, stream, 3)
    iterator = _iterator(kinesis, stream)
    answers = [kinesis.get_records(ShardIterator=iterator) for _ in range(5)]
    assert [len(a["Records"]) for a in answers] == [3, 3, 3, 3, 3]
    with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException) as caught:
        kinesis.get_records(ShardIterator=iterator)
    assert caught.value.response["Error"]["Message"] == (
        f"Rate exceeded for Shard - {ACCOUNT}/{stream}/shardId-000000000000"
    )
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    # shard 1 is read apart
    other = _iterator(kinesis, stream, 1)
    assert [len(kinesis.get_records(ShardIterator=other)["Records"]) for _ in range(5)] == [0] * 5
    # a fifth of a second later one call is back; a second later, five
    clock.now = T0 + 400.2
    assert len(kinesis.get_records(ShardIterator=iterator)["Records"]) == 3
    with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException):
        kinesis.get_records(ShardIterator=iterator)
    clock.now = T0 + 401.2
    assert [len(kinesis.get_records(ShardIterator=iterator)["Records"]) for _ in range(5)] == [3] * 5


def test_a_large_answer_holds_the_shard_s_reads_until_its_bytes_are_paid(small_quotas, streams) -> None:
    kinesis, clock, _ = small_quotas  # reads: 1,000 bytes a second
    stream = streams(kinesis, 1)
    clock.now = T0
    assert _put(kinesis, stream, 3, data=b"d" * 999)["FailedRecordCount"] == 0  # 3 x (999 + key) bytes
    iterator = _iterator(kinesis, stream)
    assert len(kinesis.get_records(ShardIterator=iterator)["Records"]) == 3  # 3,000 bytes: 2,000 in debt
    clock.now = T0 + 2
    with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException):
        kinesis.get_records(ShardIterator=iterator)
    clock.now = T0 + 2.001
    assert len(kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"]) == 1  # 1,000 bytes
    with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException):
        kinesis.get_records(ShardIterator=iterator)


def test_a_deleted_stream_s_buckets_are_dropped(aws_quotas, streams) -> None:
    kinesis, clock, quotas = aws_quotas
    stream = streams(kinesis, 1)
    clock.now = T0 + 500
    assert [_put(kinesis, stream, n)["FailedRecordCount"] for n in (500, 500, 1)] == [0, 0, 1]
    assert not quotas.admit_write(stream, 0, 1, clock.now)
    kinesis.delete_stream(StreamName=stream)
    assert quotas.admit_write(stream, 0, 1, clock.now)  # a stream made again under its name starts full


# -- off -----------------------------------------------------------------------------------------
def test_without_quotas_nothing_is_throttled(no_quotas, streams, kafka_bootstrap) -> None:
    kinesis, _, _ = no_quotas  # its clock never moves: all of this happens in the same instant
    stream = streams(kinesis, 1)
    answers = [_put(kinesis, stream, 500, data=b"z" * 599) for _ in range(4)]  # 2,000 records, 1.2 MB
    assert [a["FailedRecordCount"] for a in answers] == [0, 0, 0, 0]
    kinesis.put_record(StreamName=stream, Data=b"one more", PartitionKey="k")
    iterator = _iterator(kinesis, stream)
    counts = [len(kinesis.get_records(ShardIterator=iterator, Limit=1_000)["Records"]) for _ in range(10)]
    assert counts == [1_000] * 10  # 10 calls and 6 MB read in the same instant
    assert _end_offsets(kafka_bootstrap, stream, 1) == [2_001]
