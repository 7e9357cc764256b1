"""A Kinesis-style put API in Python: PutRecord and PutRecords against a Kafka topic.

    with StreamClient("127.0.0.1:9092") as kinesis:
        kinesis.put_record("clickstream.events", b"{...}", "visitor-42")
        # {'ShardId': 'shardId-000000000002', 'SequenceNumber': '1187', 'EncryptionType': 'NONE'}
        result = kinesis.put_records("clickstream.events", [{"Data": b"..", "PartitionKey": "k"}])
        result = put_records_with_retry(kinesis, "clickstream.events", records)  # retries failed ones

Like Kinesis: at most 500 records a request; data + partition key at most 1 MiB a record and 5 MiB
a request; partition keys 1-256 characters; a violation fails the whole request
(`InvalidArgumentException`, raised as `RecordError`). PutRecords is not atomic: each record
succeeds (ShardId, SequenceNumber) or fails (ErrorCode, ErrorMessage), in request order, and
`FailedRecordCount` counts the failures.

Where tidelake differs: the shard is a partition and the sequence number is the record's offset
(a dense integer per partition). Keys go to partitions by Kafka's murmur2 (`routing="kafka"`, the
default, so stream apps see the same keys together) or, with `routing="kinesis"`, by the MD5 of
the key over equal hash-key ranges as a Kinesis stream with uniformly split shards would;
`ExplicitHashKey` always uses those ranges. Kafka has no per-shard write quota, so throttling
(`ProvisionedThroughputExceededException`) happens only if a `ShardQuota` is given.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from core.admin import START_HINT, describe_topics
from core.errors import BrokerUnavailable, ConfigError, RecordError

log = logging.getLogger(__name__)

MAX_RECORDS = 500
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_KEY_CHARS = 256
HASH_KEY_SPACE = 1 << 128
INVALID_ARGUMENT = "InvalidArgumentException"
THROTTLED = "ProvisionedThroughputExceededException"
INTERNAL_FAILURE = "InternalFailure"


def shard_id(partition: int) -> str:
    return f"shardId-{partition:012d}"


def hash_key_partition(hash_key: int, partitions: int) -> int:
    """The shard whose equal share of the 128-bit hash-key space holds `hash_key`."""
    return hash_key * partitions >> 128


def kinesis_partition(partition_key: str, partitions: int) -> int:
    """Kinesis' routing: MD5 of the partition key as a 128-bit integer, over equal ranges."""
    return hash_key_partition(int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big"), partitions)


def kafka_partition(partition_key: str, partitions: int) -> int:
    """Kafka's default routing (murmur2 of the key bytes), as replay and the stream apps use."""
    return (murmur2(partition_key.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class ShardQuota:
    """A per-partition write quota like a provisioned shard's: records/s and bytes/s, as token buckets."""

    records_per_s: float = 1_000
    bytes_per_s: float = 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[int, list[float]] = field(default_factory=dict)

    def admit(self, partition: int, size: int) -> bool:
        now = self.clock()
        bucket = self._buckets.setdefault(partition, [self.records_per_s, self.bytes_per_s, now])
        elapsed = now - bucket[2]
        bucket[0] = min(self.records_per_s, bucket[0] + elapsed * self.records_per_s)
        bucket[1] = min(self.bytes_per_s, bucket[1] + elapsed * self.bytes_per_s)
        bucket[2] = now
        if bucket[0] >= 1 and bucket[1] >= size:
            bucket[0] -= 1
            bucket[1] -= size
            return True
        return False


def _invalid(message: str) -> RecordError:
    return RecordError(f"{INVALID_ARGUMENT}: {message}", error_type=INVALID_ARGUMENT)


def _validate_record(index: int, data: bytes, partition_key: str, explicit_hash_key: str | None) -> int:
    where = f"Records[{index}]" if index >= 0 else "the record"
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _invalid(f"{where}.Data must be bytes, got {type(data).__name__}")
    if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= MAX_KEY_CHARS:
        raise _invalid(f"{where}.PartitionKey must be a string of 1 to {MAX_KEY_CHARS} characters")
    size = len(data) + len(partition_key.encode())
    if size > MAX_RECORD_BYTES:
        raise _invalid(
            f"{where} is {size:,} bytes (data + partition key); the limit is {MAX_RECORD_BYTES:,} (1 MiB)"
        )
    if explicit_hash_key is not None and not (
        explicit_hash_key.isdigit() and int(explicit_hash_key) < HASH_KEY_SPACE
    ):
        raise _invalid(f"{where}.ExplicitHashKey must be a decimal integer from 0 to 2^128-1")
    return size


class StreamClient:
    """PutRecord / PutRecords over one idempotent kafka-python producer (acks=all, lz4)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        routing: str = "kafka",
        quota: ShardQuota | None = None,
        timeout_s: float = 30.0,
        client_id: str = "tidelake-put-api",
    ) -> None:
        if routing not in ("kafka", "kinesis"):
            msg = f"routing must be 'kafka' (murmur2, like every tidelake producer) or 'kinesis' (MD5), got {routing!r}"
            raise ConfigError(msg)
        self.routing = routing
        self.quota = quota
        self.bootstrap_servers = bootstrap_servers
        self._known_streams: set[str] = set()
        self.timeout_s = timeout_s
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                compression_type="lz4",
                max_request_size=MAX_REQUEST_BYTES + 64 * 1024,
                bootstrap_timeout_ms=int(timeout_s * 1000),
                max_block_ms=int(min(timeout_s, 10.0) * 1000),
            )
        except KafkaError as exc:
            msg = f"no Kafka broker answers at {bootstrap_servers} ({exc.__class__.__name__}); {START_HINT}"
            raise BrokerUnavailable(msg) from exc

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._producer.close(timeout=self.timeout_s)

    def _partitions(self, stream: str) -> int:
        # The producer's metadata request would auto-create a missing topic; Kinesis refuses unknown streams.
        if stream not in self._known_streams:
            if not describe_topics(self.bootstrap_servers, [stream]):
                msg = f"ResourceNotFoundException: stream {stream!r} not found; create it with `tidelake topics create`"
                raise RecordError(msg, error_type="ResourceNotFoundException")
            self._known_streams.add(stream)
        try:
            partitions = self._producer.partitions_for(stream)
        except KafkaError as exc:
            msg = f"ResourceNotFoundException: stream {stream!r} not found ({exc}); create it with `tidelake topics create`"
            raise RecordError(msg, error_type="ResourceNotFoundException") from exc
        if not partitions:
            msg = f"ResourceNotFoundException: stream {stream!r} not found; create it with `tidelake topics create`"
            raise RecordError(msg, error_type="ResourceNotFoundException")
        return len(partitions)

    def _route(self, partition_key: str, explicit_hash_key: str | None, partitions: int) -> int:
        if explicit_hash_key is not None:
            return hash_key_partition(int(explicit_hash_key), partitions)
        if self.routing == "kinesis":
            return kinesis_partition(partition_key, partitions)
        return kafka_partition(partition_key, partitions)

    def put_record(
        self, stream: str, data: bytes, partition_key: str, explicit_hash_key: str | None = None
    ) -> dict[str, str]:
        """Write one record; returns `ShardId` and `SequenceNumber`, or raises like PutRecord would."""
        result = self._put(
            stream,
            [{"Data": data, "PartitionKey": partition_key, "ExplicitHashKey": explicit_hash_key}],
            single=True,
        )
        entry = result["Records"][0]
        if "ErrorCode" in entry:
            raise RecordError(f"{entry['ErrorCode']}: {entry['ErrorMessage']}", error_type=entry["ErrorCode"])
        return {
            "ShardId": entry["ShardId"],
            "SequenceNumber": entry["SequenceNumber"],
            "EncryptionType": "NONE",
        }

    def put_records(self, stream: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Write up to 500 records; not atomic: `FailedRecordCount` and one result per record, in order."""
        return self._put(stream, records, single=False)

    def _put(self, stream: str, records: Sequence[dict[str, Any]], *, single: bool) -> dict[str, Any]:
        if not 1 <= len(records) <= MAX_RECORDS:
            raise _invalid(f"a request holds 1 to {MAX_RECORDS} records, got {len(records)}")
        total = 0
        for index, record in enumerate(records):
            try:
                data, key = record["Data"], record["PartitionKey"]
            except KeyError as exc:
                raise _invalid(f"Records[{index}] lacks {exc.args[0]}") from exc
            total += _validate_record(-1 if single else index, data, key, record.get("ExplicitHashKey"))
        if total > MAX_REQUEST_BYTES:
            raise _invalid(f"the request is {total:,} bytes; the limit is {MAX_REQUEST_BYTES:,} (5 MiB)")
        partitions = self._partitions(stream)
        futures: list[tuple[int, Any]] = []
        results: list[dict[str, str]] = []
        for record in records:
            key = record["PartitionKey"]
            partition = self._route(key, record.get("ExplicitHashKey"), partitions)
            size = len(record["Data"]) + len(key.encode())
            if self.quota is not None and not self.quota.admit(partition, size):
                results.append(
                    {
                        "ErrorCode": THROTTLED,
                        "ErrorMessage": f"Rate exceeded for shard {shard_id(partition)} in stream {stream} "
                        "under account 000000000000.",
                    }
                )
                continue
            try:
                future = self._producer.send(
                    stream, value=bytes(record["Data"]), key=key.encode(), partition=partition
                )
            except KafkaError as exc:
                log.warning("record for %s[%d] not accepted by the producer: %s", stream, partition, exc)
                results.append({"ErrorCode": INTERNAL_FAILURE, "ErrorMessage": "Internal Service Failure"})
                continue
            futures.append((len(results), future))
            results.append({})
        self._producer.flush(timeout=self.timeout_s)
        for index, future in futures:
            try:
                metadata = future.get(timeout=self.timeout_s)
            except KafkaError as exc:
                log.warning("record %d to %s failed: %s", index, stream, exc)
                results[index] = {"ErrorCode": INTERNAL_FAILURE, "ErrorMessage": "Internal Service Failure"}
                continue
            results[index] = {"SequenceNumber": str(metadata.offset), "ShardId": shard_id(metadata.partition)}
        failed = sum(1 for entry in results if "ErrorCode" in entry)
        return {"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"}


def put_records_with_retry(
    client: StreamClient,
    stream: str,
    records: Sequence[dict[str, Any]],
    *,
    max_attempts: int = 5,
    backoff_s: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """PutRecords, then again for only the records that failed (exponential backoff), like the Kinesis Agent.

    Returns one combined result in the order of `records`; entries still failing after
    `max_attempts` keep their last error.
    """
    results: list[dict[str, str]] = [{} for _ in records]
    todo = list(range(len(records)))
    for attempt in range(max_attempts):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        answer = client.put_records(stream, [records[i] for i in todo])
        still = []
        for index, entry in zip(todo, answer["Records"], strict=True):
            results[index] = entry
            if "ErrorCode" in entry:
                still.append(index)
        todo = still
        if not todo:
            break
    failed = sum(1 for entry in results if "ErrorCode" in entry)
    return {"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"}
