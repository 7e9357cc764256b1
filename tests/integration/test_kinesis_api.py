"""Kinesis Data Streams' API over Kafka, driven by boto3 unchanged against a real broker.

The server is the composed AWS endpoint (`tidelake.aws_endpoint`) with the Kinesis action table in
front of a stand-in for the query app, run by uvicorn in a thread on a free port. Its clock is the
test's (`Clock`), so iterators expire without waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from kafka import KafkaConsumer, TopicPartition

from producers.kinesis_api import KinesisService, kinesis_actions
from producers.kinesis_registry import StreamRegistry
from producers.kinesis_sequence import parse_sequence_number
from tests.aws_endpoints import AWS_CLI, aws_cli_env, aws_client, endpoint_in_thread, stand_in_query_app
from tidelake.aws_endpoint import aws_endpoint

MIB = 1024 * 1024
TOKEN = "test-token"


class Clock:
    """Epoch seconds that move only when a test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Clock]]:
    clock = Clock(1_796_000_000.0)  # 2026-11-30
    service = KinesisService(
        kafka_bootstrap, registry=StreamRegistry(tmp_path_factory.mktemp("kinesis-state")), clock=clock
    )
    app = aws_endpoint(stand_in_query_app, {"Kinesis_20131202": kinesis_actions(service)}, token=TOKEN)
    try:
        with endpoint_in_thread(app) as url:
            yield url, clock
    finally:
        service.close()


@pytest.fixture
def clock(server: tuple[str, Clock]) -> Iterator[Clock]:
    start = server[1].now
    yield server[1]
    server[1].now = start


def _client(endpoint: str, *, key: str = TOKEN, validate: bool = True):
    return aws_client("kinesis", endpoint, key=key, validate=validate)


@pytest.fixture
def kinesis(server: tuple[str, Clock]):
    return _client(server[0])


@pytest.fixture
def stream(kinesis) -> Callable[[int], str]:
    """Create a stream with boto3: `stream(shards)` -> its name."""
    made: list[str] = []

    def make(shards: int = 1) -> str:
        name = f"test.kinesis.{uuid.uuid4().hex[:10]}"
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(ClientError):
            kinesis.delete_stream(StreamName=name)


def _md5_shard(key: str, shards: int) -> int:
    value = int(hashlib.md5(key.encode()).hexdigest(), 16)
    return next(i for i in range(shards) if value < (i + 1) * 2**128 // shards)


def _read_all(kinesis, name: str, shard: str, kind: str = "TRIM_HORIZON", **extra) -> list[dict]:
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType=kind, **extra)[
        "ShardIterator"
    ]
    records: list[dict] = []
    for _ in range(100):
        answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        records += answer["Records"]
        iterator = answer["NextShardIterator"]
        if not answer["Records"] and answer["MillisBehindLatest"] == 0:
            return records
    raise AssertionError("GetRecords never caught up")


# -- streams -------------------------------------------------------------------------------------
def test_stream_lifecycle(kinesis, stream) -> None:
    name = stream(3)
    described = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert (described["StreamName"], described["StreamStatus"], described["HasMoreShards"]) == (
        name,
        "ACTIVE",
        False,
    )
    assert described["StreamARN"] == f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
    assert described["RetentionPeriodHours"] == 24
    assert described["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert [s["ShardId"] for s in described["Shards"]] == [f"shardId-00000000000{i}" for i in range(3)]
    assert [s["HashKeyRange"] for s in described["Shards"]] == [
        {"StartingHashKey": "0", "EndingHashKey": "113427455640312821154458202477256070484"},
        {
            "StartingHashKey": "113427455640312821154458202477256070485",
            "EndingHashKey": "226854911280625642308916404954512140969",
        },
        {
            "StartingHashKey": "226854911280625642308916404954512140970",
            "EndingHashKey": "340282366920938463463374607431768211455",
        },
    ]
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert (summary["OpenShardCount"], summary["ConsumerCount"]) == (3, 0)
    assert summary["StreamCreationTimestamp"] == described["StreamCreationTimestamp"]
    assert kinesis.list_shards(StreamName=name)["Shards"] == described["Shards"]
    first = kinesis.list_shards(StreamName=name, MaxResults=2)
    assert [s["ShardId"] for s in first["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    rest = kinesis.list_shards(NextToken=first["NextToken"])
    assert [s["ShardId"] for s in rest["Shards"]] == ["shardId-000000000002"]
    assert "NextToken" not in rest
    assert name in kinesis.list_streams(ExclusiveStartStreamName=name[:-1])["StreamNames"]
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 2})

    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.delete_stream(StreamName=name)
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException) as caught:
        kinesis.describe_stream(StreamName=name)
    assert caught.value.response["Error"]["Message"] == f"Stream {name} under account 000000000000 not found."


def test_on_demand_streams_have_four_shards(kinesis, stream) -> None:
    name = f"test.kinesis.{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    try:
        summary = kinesis.describe_stream_summary(
            StreamARN=f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"
        )
        summary = summary["StreamDescriptionSummary"]
        assert (summary["OpenShardCount"], summary["StreamModeDetails"]) == (4, {"StreamMode": "ON_DEMAND"})
    finally:
        kinesis.delete_stream(StreamName=name)
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "PROVISIONED"})


# -- writing -------------------------------------------------------------------------------------
def test_records_land_on_the_md5_shard_as_the_pipeline_s_records(
    kinesis, stream, kafka_bootstrap: str
) -> None:
    name = stream(4)
    event = {"event_id": "e1", "visitor_id": "v-42", "page": "/", "event_time": "2026-11-30T18:00:00.000000Z"}
    raw = json.dumps(event).encode()
    put = kinesis.put_record(StreamName=name, Data=raw, PartitionKey="v-42")
    assert put["ShardId"] == f"shardId-{_md5_shard('v-42', 4):012d}"
    assert parse_sequence_number(put["SequenceNumber"]) == (_md5_shard("v-42", 4), 0)
    top = str(2**128 - 1)
    explicit = kinesis.put_record(
        StreamName=name, Data=b"\x00\xffnot json", PartitionKey="k", ExplicitHashKey=top
    )
    assert explicit["ShardId"] == "shardId-000000000003"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(name, p) for p in range(4)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                seen += [(tp.partition, r.key, r.value) for r in batch]
    finally:
        consumer.close()
    assert sorted(seen) == sorted([(_md5_shard("v-42", 4), b"v-42", raw), (3, b"k", b"\x00\xffnot json")])


def test_ten_thousand_records_round_trip_in_order(kinesis, stream) -> None:
    name = stream(4)
    put_order: dict[str, list[str]] = {f"shardId-{i:012d}": [] for i in range(4)}
    for call in range(20):
        batch = [
            {"Data": f"record-{i}".encode(), "PartitionKey": f"key-{i % 997}"}
            for i in range(call * 500, call * 500 + 500)
        ]
        answer = kinesis.put_records(StreamName=name, Records=batch)
        assert answer["FailedRecordCount"] == 0
        for entry, record in zip(answer["Records"], batch, strict=True):
            assert entry["ShardId"] == f"shardId-{_md5_shard(record['PartitionKey'], 4):012d}"
            put_order[entry["ShardId"]].append(record["Data"].decode())
    read: list[str] = []
    for shard, expected in put_order.items():
        records = _read_all(kinesis, name, shard)
        got = [r["Data"].decode() for r in records]
        assert got == expected, shard  # in order per shard
        numbers = [int(r["SequenceNumber"]) for r in records]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        read += got
    assert sorted(read) == sorted(f"record-{i}" for i in range(10_000))  # none lost, none twice


def test_an_at_timestamp_far_in_the_future_reads_nothing_and_infinity_is_refused(kinesis, stream) -> None:
    name = stream(1)
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")

    def raw_iterator(timestamp: str) -> httpx.Response:  # boto3 cannot send these times
        body = '{"StreamName": "%s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": %s}'
        return httpx.post(
            kinesis.meta.endpoint_url,
            content=(body % (name, timestamp)).encode(),
            headers={"X-Amz-Target": "Kinesis_20131202.GetShardIterator", "Content-Type": "application/x-amz-json-1.1",
                     "Authorization": f"AWS4-HMAC-SHA256 Credential={TOKEN}/20261130/us-east-1/kinesis/aws4_request"},
        )  # fmt: skip

    far = raw_iterator("1e300")
    assert far.status_code == 200
    assert kinesis.get_records(ShardIterator=far.json()["ShardIterator"])["Records"] == []
    infinite = raw_iterator("Infinity")
    assert (infinite.status_code, infinite.json()) == (
        400,
        {
            "__type": "InvalidArgumentException",
            "Message": "Timestamp inf is not a time.",
            "message": "Timestamp inf is not a time.",
        },
    )


def test_kafkas_internal_topics_are_no_streams(kinesis) -> None:
    for call in (
        lambda: kinesis.describe_stream_summary(StreamName="__consumer_offsets"),
        lambda: kinesis.delete_stream(StreamName="__consumer_offsets"),
        lambda: kinesis.put_record(StreamName="__transaction_state", Data=b"x", PartitionKey="k"),
        lambda: kinesis.list_shards(
            StreamARN="arn:aws:kinesis:us-east-1:000000000000:stream/__consumer_offsets"
        ),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        kinesis.create_stream(StreamName="__mine", ShardCount=1)
    assert exc.value.response["Error"] == {
        "Code": "InvalidArgumentException",
        "Message": "Stream name '__mine': names starting with '__' are Kafka's internal topics here.",
    }
    assert not any(n.startswith("__") for n in kinesis.list_streams()["StreamNames"])


def test_limits_answer_with_aws_error_codes(server, kinesis, stream) -> None:
    name = stream(1)
    loose = _client(server[0], validate=False)  # botocore itself refuses an empty key before sending

    def code(call: Callable[[], object]) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            call()
        error = caught.value.response["Error"]
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        return error["Code"], error["Message"]

    one = [{"Data": b"x", "PartitionKey": "k"}]
    assert code(lambda: kinesis.put_records(StreamName=name, Records=one * 501)) == (
        "ValidationException",
        "1 validation error detected: Value at 'records' failed to satisfy constraint: "
        "Member must have length less than or equal to 500",
    )
    with pytest.raises(kinesis.exceptions.ValidationException):
        kinesis.put_records(StreamName=name, Records=one * 501)
    five_mib = [{"Data": b"a" * (MIB - 1), "PartitionKey": "k"}] * 5  # data + keys: exactly 5 MiB
    assert kinesis.put_records(StreamName=name, Records=five_mib)["FailedRecordCount"] == 0
    assert code(
        lambda: kinesis.put_records(StreamName=name, Records=[*five_mib, {"Data": b"", "PartitionKey": "k"}])
    ) == (
        "InvalidArgumentException",
        "Records size exceeds 5 MB limit",
    )
    assert kinesis.put_record(StreamName=name, Data=b"a" * (MIB - 3), PartitionKey="key")["ShardId"]  # 1 MiB
    assert code(lambda: kinesis.put_record(StreamName=name, Data=b"a" * (MIB - 2), PartitionKey="key")) == (
        "ValidationException",
        "1 validation error detected: Value at 'data' failed to satisfy constraint: "
        "Member must have length less than or equal to 1048576",
    )
    assert code(
        lambda: kinesis.put_records(StreamName=name, Records=[{"Data": b"a" * MIB, "PartitionKey": "k"}])
    )[1] == (
        "1 validation error detected: Value at 'records.1.member.data' failed to satisfy constraint: "
        "Member must have length less than or equal to 1048576"
    )
    assert (
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k" * 256)["ShardId"]
        == "shardId-000000000000"
    )
    assert (
        code(lambda: kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k" * 257))[0]
        == "ValidationException"
    )
    assert code(lambda: loose.put_record(StreamName=name, Data=b"x", PartitionKey="")) == (
        "ValidationException",
        "1 validation error detected: Value '' at 'partitionKey' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
    )
    assert code(lambda: loose.put_records(StreamName=name, Records=[{"Data": b"x", "PartitionKey": ""}]))[
        0
    ] == ("ValidationException")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey=str(2**128))
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.put_record(StreamName=name + "-missing", Data=b"x", PartitionKey="k")


# -- reading -------------------------------------------------------------------------------------
def test_iterator_types_and_sequence_number_round_trips(kinesis, stream) -> None:
    name = stream(1)
    shard = "shardId-000000000000"
    puts = [kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey="k") for i in range(5)]
    seqs = [p["SequenceNumber"] for p in puts]
    assert seqs == sorted(seqs)

    def first(kind: str, **extra) -> list[str]:
        return [r["Data"].decode() for r in _read_all(kinesis, name, shard, kind, **extra)]

    assert first("TRIM_HORIZON") == ["r0", "r1", "r2", "r3", "r4"]
    assert first("AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]) == ["r2", "r3", "r4"]
    assert first("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]) == ["r3", "r4"]
    assert first("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[4]) == []
    records = _read_all(kinesis, name, shard)
    assert [r["SequenceNumber"] for r in records] == seqs
    assert all(r["PartitionKey"] == "k" for r in records)
    at = records[3]["ApproximateArrivalTimestamp"]
    from_time = _read_all(kinesis, name, shard, "AT_TIMESTAMP", Timestamp=at)
    assert from_time[0]["ApproximateArrivalTimestamp"] >= at
    assert [r["Data"] for r in from_time] == [r["Data"] for r in records[-len(from_time) :]]
    assert len(from_time) >= 2

    latest = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="LATEST")[
        "ShardIterator"
    ]
    assert kinesis.get_records(ShardIterator=latest)["Records"] == []
    kinesis.put_record(StreamName=name, Data=b"r5", PartitionKey="k")
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=latest)["Records"]] == [b"r5"]

    other = stream(2)
    with pytest.raises(
        kinesis.exceptions.InvalidArgumentException
    ):  # a sequence number of shard 0 on shard 1
        kinesis.get_shard_iterator(
            StreamName=other,
            ShardId="shardId-000000000001",
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=seqs[0],
        )
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.get_shard_iterator(
            StreamName=name, ShardId="shardId-000000000001", ShardIteratorType="LATEST"
        )


def test_an_iterator_can_be_reused_and_expires_after_five_minutes(kinesis, stream, clock: Clock) -> None:
    name = stream(1)
    for i in range(4):
        kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey="k")
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    first = kinesis.get_records(ShardIterator=iterator, Limit=2)
    again = kinesis.get_records(ShardIterator=iterator, Limit=2)
    assert [r["Data"] for r in first["Records"]] == [r["Data"] for r in again["Records"]] == [b"r0", b"r1"]
    assert first["MillisBehindLatest"] >= 0
    after = kinesis.get_records(ShardIterator=first["NextShardIterator"], Limit=10)
    assert [r["Data"] for r in after["Records"]] == [b"r2", b"r3"]
    assert after["MillisBehindLatest"] == 0

    clock.now += 300.0  # exactly 5 minutes after they were issued: still good
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"]] == [b"r0"]
    renewed = kinesis.get_records(ShardIterator=after["NextShardIterator"])["NextShardIterator"]
    clock.now += 0.001
    with pytest.raises(kinesis.exceptions.ExpiredIteratorException) as caught:
        kinesis.get_records(ShardIterator=iterator)
    assert caught.value.response["Error"]["Message"].startswith("Iterator expired.")
    with pytest.raises(kinesis.exceptions.ExpiredIteratorException):
        kinesis.get_records(ShardIterator=after["NextShardIterator"])
    assert kinesis.get_records(ShardIterator=renewed)["Records"] == []  # NextShardIterator: 5 more minutes
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.get_records(ShardIterator=iterator[:-4] + "AAAA")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.get_records(ShardIterator=iterator, Limit=10_001)


def test_get_records_reads_committed_records_only(kinesis, stream, kafka_bootstrap: str) -> None:
    """Records of an aborted transaction are never returned and those of an open one wait for its
    commit; the sequence numbers are the records' offsets (markers take offsets too)."""
    from kafka import KafkaProducer

    name = stream(1)
    shard = "shardId-000000000000"

    def put(*values: bytes) -> None:
        answer = kinesis.put_records(
            StreamName=name, Records=[{"Data": v, "PartitionKey": "k"} for v in values]
        )
        assert answer["FailedRecordCount"] == 0

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"test-kinesis-{uuid.uuid4().hex[:8]}"
    )
    try:
        producer.init_transactions()
        put(b"c0", b"c1")
        producer.begin_transaction()
        for value in (b"a0", b"a1", b"a2"):
            producer.send(name, value=value, key=b"k", partition=0)
        producer.flush()
        producer.abort_transaction()
        producer.begin_transaction()
        producer.send(name, value=b"t0", key=b"k", partition=0)
        producer.flush()  # open: its record is past the last stable offset
        put(b"c2")
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        first = kinesis.get_records(ShardIterator=iterator)
        assert [r["Data"] for r in first["Records"]] == [b"c0", b"c1"]
        assert first["MillisBehindLatest"] == 0
        assert kinesis.get_records(ShardIterator=first["NextShardIterator"])["Records"] == []
        producer.commit_transaction()
    finally:
        producer.close()
    records = _read_all(kinesis, name, shard)
    assert [r["Data"] for r in records] == [b"c0", b"c1", b"t0", b"c2"]
    offsets = [parse_sequence_number(r["SequenceNumber"])[1] for r in records]
    assert offsets == [0, 1, 6, 7]  # 2-4: the aborted records, 5: the abort marker
    after = kinesis.get_records(ShardIterator=first["NextShardIterator"])
    assert [r["Data"] for r in after["Records"]] == [b"t0", b"c2"]


def test_a_page_read_ahead_is_only_given_when_it_is_what_a_read_would_return(kinesis, stream) -> None:
    """A consumer catching up gets its next page read ahead (producers.kinesis_reads.ReadAhead);
    the page must be what a read at the time of the call returns: after new records, with another
    Limit, and after the stream was made again."""
    name = stream(1)
    shard = "shardId-000000000000"

    def put(*values: str) -> None:
        records = [{"Data": v.encode(), "PartitionKey": "k"} for v in values]
        assert kinesis.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0

    def data(answer: dict) -> list[str]:
        return [r["Data"].decode() for r in answer["Records"]]

    put(*(f"r{i}" for i in range(15)))
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    first = kinesis.get_records(ShardIterator=iterator, Limit=10)  # r10-r14 are read ahead, to the end
    assert data(first) == [f"r{i}" for i in range(10)]
    put("r15", "r16")  # the page read ahead no longer reaches the end
    second = kinesis.get_records(ShardIterator=first["NextShardIterator"], Limit=10)
    assert data(second) == [f"r{i}" for i in range(10, 17)]
    assert kinesis.get_records(ShardIterator=second["NextShardIterator"])["Records"] == []

    put(*(f"s{i}" for i in range(20)))  # r0-r16, s0-s19
    third = kinesis.get_records(ShardIterator=second["NextShardIterator"], Limit=10)  # s10-s19 read ahead
    assert data(third) == [f"s{i}" for i in range(10)]
    smaller = kinesis.get_records(ShardIterator=third["NextShardIterator"], Limit=4)
    assert data(smaller) == ["s10", "s11", "s12", "s13"]
    rest = kinesis.get_records(ShardIterator=smaller["NextShardIterator"], Limit=10)
    assert data(rest) == [f"s{i}" for i in range(14, 20)]
    assert data(kinesis.get_records(ShardIterator=third["NextShardIterator"], Limit=10)) == [
        f"s{i}" for i in range(10, 20)
    ]  # the same iterator again reads the same records

    again = kinesis.get_records(ShardIterator=iterator, Limit=10)  # r10-r19 are read ahead
    kinesis.delete_stream(StreamName=name)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    put(*(f"n{i}" for i in range(12)))
    assert data(kinesis.get_records(ShardIterator=again["NextShardIterator"], Limit=10)) == ["n10", "n11"]


# -- the endpoint ----------------------------------------------------------------------------------
def test_malformed_requests_get_aws_s_400(server, stream) -> None:
    endpoint = server[0]
    name = stream(1)
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Kinesis_20131202.PutRecord",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={TOKEN}/20261130/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0",
    }
    bad_json = httpx.post(endpoint, content=b'{"StreamName": ', headers=headers)
    assert bad_json.status_code == 400
    assert bad_json.headers["content-type"] == "application/x-amz-json-1.1"
    assert bad_json.json()["__type"] == "SerializationException"
    bad_blob = httpx.post(
        endpoint, json={"StreamName": name, "Data": "***", "PartitionKey": "k"}, headers=headers
    )
    assert (bad_blob.status_code, bad_blob.json()["__type"]) == (400, "SerializationException")
    unknown = httpx.post(
        endpoint, content=b"{}", headers={**headers, "X-Amz-Target": "Kinesis_20131202.SplitShard"}
    )
    assert (unknown.status_code, unknown.json()["__type"]) == (400, "UnknownOperationException")

    loose = _client(endpoint, validate=False)
    with pytest.raises(ClientError) as caught:
        loose.create_stream(StreamName=name + "x", ShardCount="two")
    assert caught.value.response["Error"]["Code"] == "SerializationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(loose.exceptions.ValidationException):
        loose.create_stream(StreamName="no spaces allowed", ShardCount=1)


def test_token_and_dispatch(server, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = server[0]
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # what boto3 >= 1.28 and the AWS CLI read
    from_env = boto3.client(
        "kinesis", region_name="us-east-1", aws_access_key_id=TOKEN, aws_secret_access_key="x"
    )
    assert "StreamNames" in from_env.list_streams()
    with pytest.raises(ClientError) as caught:
        _client(endpoint, key="not-the-token").list_streams()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert "StreamNames" in _client(endpoint).list_streams()
    athena = httpx.post(endpoint, content=b"{}", headers={"X-Amz-Target": "AmazonAthena.ListWorkGroups"})
    assert athena.json() == {"answered_by": "query app"}
    assert httpx.get(endpoint + "/api/catalog").json() == {"answered_by": "query app"}
    foreign = httpx.post(
        endpoint,
        content=b"{}",
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams", "Host": "evil.example"},
    )
    assert foreign.status_code == 400


def test_the_aws_cli_puts_a_record(server, kinesis, stream) -> None:
    endpoint = server[0]
    name = stream(2)
    env = aws_cli_env(TOKEN)
    aws = AWS_CLI
    event = '{"visitor_id": "v-7", "page": "/cart"}'
    put = subprocess.run(
        [aws, "--endpoint-url", endpoint, "kinesis", "put-record", "--stream-name", name,
         "--partition-key", "v-7", "--data", event, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    answer = json.loads(put.stdout)
    assert answer["ShardId"] == f"shardId-{_md5_shard('v-7', 2):012d}"
    records = _read_all(kinesis, name, answer["ShardId"])
    assert [(r["Data"], r["SequenceNumber"]) for r in records] == [(event.encode(), answer["SequenceNumber"])]
