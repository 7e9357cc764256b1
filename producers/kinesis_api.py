"""Kinesis Data Streams' actions over Kafka: a stream is a topic, a shard a partition.

`kinesis_actions(service)` is the action table `tidelake serve` answers `X-Amz-Target:
Kinesis_20131202.<Action>` with: CreateStream, DeleteStream, DescribeStream,
DescribeStreamSummary, ListStreams, ListShards, PutRecord, PutRecords, GetShardIterator and
GetRecords. Request shapes, limits and error codes follow botocore's service model
(`botocore/data/kinesis/2013-12-02/service-2.json`) and the API reference's text:

- PutRecord(s): at most 500 records a call (ValidationException); a record's data + partition key
  at most 1 MiB (ValidationException at `records.N.member.data`); a call's data + keys at most
  5 MiB (InvalidArgumentException `Records size exceeds 5 MB limit`); keys of 1-256 characters
  (ValidationException); an ExplicitHashKey outside [0, 2^128 - 1] is InvalidArgumentException.
  The bytes go to the topic unchanged, with the partition key as the Kafka key, to the partition
  of the shard the hash key falls in (`producers.kinesis_shards`). PutRecords is not atomic: a
  record Kafka does not acknowledge comes back with `ErrorCode` InternalFailure.
- Sequence numbers encode partition and offset (`producers.kinesis_sequence`); shard iterators
  are signed tokens that expire after 5 minutes (`producers.kinesis_iterators`).
- GetRecords reads with a pooled kafka-python consumer that is assigned the one partition and
  seeks (read_committed: aborted transactions are never returned). At most `Limit` (default and
  maximum 10,000) records and about 10 MiB a call.

Shard quotas are off unless the service is given `quotas` (`producers.kinesis_quotas`): then a
write over a shard's 1,000 records/s or 1 MiB/s is `ProvisionedThroughputExceededException` (HTTP
400 for PutRecord; PutRecords fails that record alone, with that `ErrorCode`, and counts it in
`FailedRecordCount`), and so is a GetRecords call over the shard's 5 calls/s or 2 MiB/s.

Streams are ACTIVE as soon as CreateStream returns; there is no resharding, consumers (enhanced
fan-out), tags or encryption: docs/aws-apis.md lists what differs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from pydantic import Field

from core.admin import START_HINT, create_topics
from core.aws_json import (
    ActionTable,
    AwsError,
    AwsModel,
    constraint_error,
    decode_blob,
    encode_blob,
    parse_request,
)
from core.errors import BrokerUnavailable, ConfigError
from core.settings import Settings
from core.topics import INTERNAL_TOPIC_PREFIX, KINESIS_RETENTION_MS, TopicSpec
from producers.kinesis_iterators import ShardPosition, decode_iterator, encode_iterator
from producers.kinesis_quotas import THROTTLED, ShardQuotas, read_throttled_message, write_throttled_message
from producers.kinesis_registry import REGISTRY_DIR, StreamRegistry
from producers.kinesis_sequence import parse_sequence_number, sequence_number
from producers.kinesis_shards import (
    hash_key_ranges,
    parse_hash_key,
    shard_for_hash_key,
    shard_for_key,
    shard_partition,
)
from producers.kinesis_shards import shard_id as shard_name

log = logging.getLogger(__name__)

#: The target prefix of every Kinesis Data Streams action (botocore: metadata.targetPrefix).
TARGET_PREFIX = "Kinesis_20131202"
ACCOUNT_ID = "000000000000"
#: A request that failed on tidelake's side (botocore: InternalFailureException, retried by the SDKs);
#: a single record of PutRecords that failed says `InternalFailure`, as AWS's does.
INTERNAL_ERROR = "InternalFailureException"
MAX_RECORDS = 500
MAX_RECORD_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_GET_RECORDS = 10_000
#: The latest record time Kafka's ListOffsets takes (int64 milliseconds, less a margin).
MAX_TIMESTAMP_MS = 2**62
MAX_GET_BYTES = 10 * 1024 * 1024
#: Shards one stream may have (AWS's default account quota in the largest regions: 500).
MAX_SHARDS = 500
#: On-demand streams start with 4 shards here (AWS starts them at 4 MiB/s of writes = 4 shards).
ON_DEMAND_SHARDS = 4
#: Topic config of streams made by CreateStream: Kinesis' 24 h retention; room for 1 MiB records.
_TOPIC_CONFIGS = {"retention.ms": str(KINESIS_RETENTION_MS), "max.message.bytes": str(2 * 1024 * 1024)}
_KNOWN_TTL_S = 5.0

# -- request shapes (botocore's Kinesis model, 2013-12-02) -----------------------------------------
NameStr = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$")]
ArnStr = Annotated[
    str, Field(min_length=1, max_length=2048, pattern=r"^arn:aws.*:kinesis:.*:\d{12}:stream/\S+$")
]
ShardIdStr = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$")]
HashKeyStr = Annotated[str, Field(pattern=r"^(0|([1-9]\d{0,38}))$")]
SeqStr = Annotated[str, Field(pattern=r"^(0|([1-9]\d{0,128}))$")]
KeyStr = Annotated[str, Field(min_length=1, max_length=256)]
TokenStr = Annotated[str, Field(min_length=1, max_length=1_048_576)]


class StreamRef(AwsModel):
    StreamName: NameStr | None = None
    StreamARN: ArnStr | None = None


class ModeDetails(AwsModel):
    StreamMode: Literal["PROVISIONED", "ON_DEMAND"]


class CreateStreamInput(AwsModel):
    StreamName: NameStr
    ShardCount: Annotated[int, Field(ge=1)] | None = None
    StreamModeDetails: ModeDetails | None = None


class DeleteStreamInput(StreamRef):
    EnforceConsumerDeletion: bool | None = None


class DescribeStreamInput(StreamRef):
    Limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    ExclusiveStartShardId: ShardIdStr | None = None


class ListStreamsInput(AwsModel):
    Limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    ExclusiveStartStreamName: NameStr | None = None
    NextToken: TokenStr | None = None


class ShardFilterIn(AwsModel):
    Type: Literal[
        "AFTER_SHARD_ID",
        "AT_TRIM_HORIZON",
        "FROM_TRIM_HORIZON",
        "AT_LATEST",
        "AT_TIMESTAMP",
        "FROM_TIMESTAMP",
    ]
    ShardId: ShardIdStr | None = None
    Timestamp: float | None = None


class ListShardsInput(StreamRef):
    NextToken: TokenStr | None = None
    ExclusiveStartShardId: ShardIdStr | None = None
    MaxResults: Annotated[int, Field(ge=1, le=10_000)] | None = None
    StreamCreationTimestamp: float | None = None
    ShardFilter: ShardFilterIn | None = None


class PutRecordInput(StreamRef):
    Data: str
    PartitionKey: KeyStr  # optional in the model for AUTO distribution, which tidelake lacks
    ExplicitHashKey: HashKeyStr | None = None
    SequenceNumberForOrdering: SeqStr | None = None


class PutRecordsEntry(AwsModel):
    Data: str
    PartitionKey: KeyStr
    ExplicitHashKey: HashKeyStr | None = None


class PutRecordsInput(StreamRef):
    Records: Annotated[list[PutRecordsEntry], Field(min_length=1, max_length=MAX_RECORDS)]


class GetShardIteratorInput(StreamRef):
    ShardId: ShardIdStr
    ShardIteratorType: Literal[
        "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"
    ]
    StartingSequenceNumber: SeqStr | None = None
    Timestamp: float | None = None


class GetRecordsInput(StreamRef):
    ShardIterator: Annotated[str, Field(min_length=1, max_length=512)]
    Limit: Annotated[int, Field(ge=1)] | None = None


def _not_found(stream: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"Stream {stream} under account {ACCOUNT_ID} not found.")


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidArgumentException", message)


class KinesisService:
    """The state behind the actions: one idempotent producer, a bounded pool of consumers, the
    stream registry and the iterator secret. Thread-safe (handlers run in a thread pool); `close()`
    closes every Kafka client.

    `clock` (epoch seconds) dates iterators and creation times and meters `quotas`; tests pass
    their own to expire iterators and refill quotas without waiting. `quotas` (None: off, as by
    default) throttles writes and reads per shard as AWS does.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        registry: StreamRegistry | None = None,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        region: str = "us-east-1",
        max_consumers: int = 4,
        timeout_s: float = 10.0,
        client_id: str = "tidelake-kinesis",
        quotas: ShardQuotas | None = None,
    ) -> None:
        import secrets

        self.bootstrap_servers = bootstrap_servers
        self.registry = registry or StreamRegistry(None)
        self.secret = secret or secrets.token_bytes(32)
        self.clock = clock
        self.region = region
        self.timeout_s = timeout_s
        self.client_id = client_id
        self.quotas = quotas
        self._producer: KafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._idle: list[KafkaConsumer] = []
        self._pool_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_consumers)
        self._known: dict[str, tuple[int, float]] = {}
        self._admin_client: KafkaAdminClient | None = None
        self._admin_lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, quotas: ShardQuotas | None = None) -> KinesisService:
        """The service of `tidelake serve`: the configured Kafka, the registry under
        `<runtime.state_dir>/kinesis/`, `quotas` (`ShardQuotas.aws_defaults()` for AWS's) or none."""
        return cls(
            settings.kafka.bootstrap_servers,
            registry=StreamRegistry(settings.runtime.state_dir / REGISTRY_DIR),
            client_id=f"{settings.kafka.client_id}-kinesis",
            quotas=quotas,
        )

    # -- Kafka clients -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the producer (after sending what it holds) and every pooled consumer."""
        self._closed = True
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close(timeout=self.timeout_s)
                self._producer = None
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for consumer in idle:
            consumer.close()
        with self._admin_lock:
            if self._admin_client is not None:
                self._admin_client.close()
                self._admin_client = None
        self.registry.close()

    @contextlib.contextmanager
    def _admin(self) -> Iterator[KafkaAdminClient]:
        """The one admin client, for this thread alone while the block runs; dropped (and made
        again next time) after a Kafka error, which becomes InternalFailure."""
        with self._admin_lock:
            try:
                if self._admin_client is None:
                    self._admin_client = KafkaAdminClient(
                        bootstrap_servers=self.bootstrap_servers,
                        bootstrap_timeout_ms=int(self.timeout_s * 1000),
                        client_id=self.client_id,
                        request_timeout_ms=int(self.timeout_s * 1000),
                    )
                yield self._admin_client
            except KafkaError as exc:
                if self._admin_client is not None:
                    self._admin_client.close()
                    self._admin_client = None
                if isinstance(exc, UnknownTopicOrPartitionError):
                    raise
                raise _unavailable(self.bootstrap_servers, exc) from exc

    def _get_producer(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.bootstrap_servers,
                        bootstrap_timeout_ms=int(self.timeout_s * 1000),
                        client_id=self.client_id,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=200,  # every call flushes: no sends while it appends
                        batch_size=256 * 1024,
                        compression_type="lz4",
                        max_request_size=MAX_REQUEST_BYTES + 1024 * 1024,
                        max_block_ms=int(self.timeout_s * 1000),
                        allow_auto_create_topics=False,  # Kinesis never makes a stream on a put
                    )
                except KafkaError as exc:
                    raise _unavailable(self.bootstrap_servers, exc) from exc
            return self._producer

    @contextlib.contextmanager
    def _consumer(self) -> Iterator[KafkaConsumer]:
        """A consumer of the pool for this thread alone; at most `max_consumers` exist."""
        if not self._slots.acquire(timeout=self.timeout_s):
            raise AwsError(INTERNAL_ERROR, "every reader is busy; try again", 500)
        try:
            with self._pool_lock:
                consumer = self._idle.pop() if self._idle else None
            if consumer is None:
                try:
                    consumer = KafkaConsumer(
                        bootstrap_servers=self.bootstrap_servers,
                        bootstrap_timeout_ms=int(self.timeout_s * 1000),
                        client_id=self.client_id,
                        group_id=None,
                        enable_auto_commit=False,
                        isolation_level="read_committed",
                        auto_offset_reset="earliest",
                        fetch_max_wait_ms=50,
                        fetch_max_bytes=MAX_GET_BYTES + 1024 * 1024,
                        max_partition_fetch_bytes=4 * 1024 * 1024,
                        allow_auto_create_topics=False,
                    )
                except KafkaError as exc:
                    raise _unavailable(self.bootstrap_servers, exc) from exc
            healthy = False
            try:
                yield consumer
                healthy = True
            finally:
                if healthy and not self._closed:
                    consumer.assign([])
                    with self._pool_lock:
                        self._idle.append(consumer)
                else:
                    consumer.close()
        finally:
            self._slots.release()

    # -- streams ---------------------------------------------------------------------------------
    def _stream(self, ref: StreamRef) -> str:
        """The stream's name; Kafka's internal topics (`__consumer_offsets`, `__transaction_state`)
        are no streams: ResourceNotFoundException, so no action can read, write or delete them."""
        if ref.StreamName is not None:
            name = ref.StreamName
        elif ref.StreamARN is not None:
            name = ref.StreamARN.split(":stream/", 1)[1]
        else:
            raise _invalid("Either StreamName or StreamARN must be given.")
        if name.startswith(INTERNAL_TOPIC_PREFIX):
            raise _not_found(name)
        return name

    def _shards(self, stream: str) -> int:
        """The stream's shard count (cached for a few seconds), or ResourceNotFoundException."""
        now = time.monotonic()
        known = self._known.get(stream)
        if known is not None and now - known[1] < _KNOWN_TTL_S:
            return known[0]
        with self._admin() as admin:
            described = admin.describe_topics([stream])
        partitions = sum(
            len(t["partitions"]) for t in described if t["error_code"] == 0 and t["name"] == stream
        )
        if partitions == 0:
            self._known.pop(stream, None)
            raise _not_found(stream)
        self._known[stream] = (partitions, now)
        return partitions

    def arn(self, stream: str) -> str:
        return f"arn:aws:kinesis:{self.region}:{ACCOUNT_ID}:stream/{stream}"

    def create_stream(self, request: CreateStreamInput) -> dict[str, Any]:
        mode = request.StreamModeDetails.StreamMode if request.StreamModeDetails else "PROVISIONED"
        if mode == "ON_DEMAND":
            shards = ON_DEMAND_SHARDS
        elif request.ShardCount is None:
            raise _invalid("ShardCount is required for a stream in PROVISIONED mode.")
        else:
            shards = request.ShardCount
        if shards > MAX_SHARDS:
            msg = f"This request would exceed the shard limit for the account {ACCOUNT_ID} in {self.region}. Current limit of shards is {MAX_SHARDS}. Number of additional shards that would have resulted from this request is {shards}."
            raise AwsError("LimitExceededException", msg)
        name = request.StreamName
        if name.startswith(INTERNAL_TOPIC_PREFIX):
            msg = f"Stream name {name!r}: names starting with {INTERNAL_TOPIC_PREFIX!r} are Kafka's internal topics here."
            raise _invalid(msg)
        try:
            created = create_topics(self.bootstrap_servers, [TopicSpec(name, shards, dict(_TOPIC_CONFIGS))])
        except (BrokerUnavailable, ConfigError) as exc:
            if TopicAlreadyExistsError.__name__ in str(exc) or "already exists" in str(exc):
                created = []
            else:
                raise AwsError(INTERNAL_ERROR, str(exc), 500) from exc
        if not created:
            msg = f"Stream {name} under account {ACCOUNT_ID} already exists."
            raise AwsError("ResourceInUseException", msg)
        self.registry.put(name, mode, self.clock())
        self._known.pop(name, None)
        if self.quotas is not None:
            self.quotas.forget(name)
        return {}

    def delete_stream(self, request: DeleteStreamInput) -> dict[str, Any]:
        name = self._stream(request)
        self._shards(name)
        try:
            with self._admin() as admin:
                admin.delete_topics([name], timeout_ms=int(self.timeout_s * 1000))
        except UnknownTopicOrPartitionError as exc:
            raise _not_found(name) from exc
        self.registry.forget(name)
        self._known.pop(name, None)
        if self.quotas is not None:
            self.quotas.forget(name)
        return {}

    def _retention_hours(self, stream: str) -> int:
        """The topic's retention.ms in whole hours (24 when the broker does not say)."""
        try:
            with self._admin() as admin:
                answer = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, stream, configs={"retention.ms": None})],
                    config_filter="all",
                )
            value = answer["topic"][stream]["retention.ms"]
            millis = int(value["value"] if isinstance(value, dict) else value)
        except Exception:  # an answer in another shape, or none: Kinesis' default stands
            return KINESIS_RETENTION_MS // 3_600_000
        return max(1, millis // 3_600_000) if millis > 0 else 8760

    def _shard_list(self, shards: int, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        first = 0
        if after is not None:
            index = shard_partition(after)
            first = index + 1 if index is not None else 0
        ranges = hash_key_ranges(shards)
        chosen = range(first, min(shards, first + limit))
        listed = [
            {
                "ShardId": shard_name(p),
                "HashKeyRange": ranges[p].as_aws(),
                "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(p, 0)},
            }
            for p in chosen
        ]
        return listed, first + limit < shards

    def _summary(self, name: str, shards: int) -> dict[str, Any]:
        record = self.registry.get(name, self.clock())
        return {
            "StreamName": name,
            "StreamARN": self.arn(name),
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": record.mode},
            "RetentionPeriodHours": self._retention_hours(name),
            "StreamCreationTimestamp": record.created_s,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE",
        }

    def describe_stream(self, request: DescribeStreamInput) -> dict[str, Any]:
        name = self._stream(request)
        shards = self._shards(name)
        listed, more = self._shard_list(shards, request.ExclusiveStartShardId, min(request.Limit or 100, 100))
        return {"StreamDescription": {**self._summary(name, shards), "Shards": listed, "HasMoreShards": more}}

    def describe_stream_summary(self, request: StreamRef) -> dict[str, Any]:
        name = self._stream(request)
        shards = self._shards(name)
        summary = {**self._summary(name, shards), "OpenShardCount": shards, "ConsumerCount": 0}
        return {"StreamDescriptionSummary": summary}

    def list_streams(self, request: ListStreamsInput) -> dict[str, Any]:
        start = request.ExclusiveStartStreamName
        if request.NextToken is not None:
            start = _unwrap_token(request.NextToken, "streams")
        with self._admin() as admin:
            names = sorted(t for t in admin.list_topics() if not t.startswith(INTERNAL_TOPIC_PREFIX))
        if start is not None:
            names = [n for n in names if n > start]
        limit = min(request.Limit or 100, 100)
        page, more = names[:limit], len(names) > limit
        now = self.clock()
        summaries = []
        for name in page:
            record = self.registry.get(name, now)
            summaries.append(
                {
                    "StreamName": name,
                    "StreamARN": self.arn(name),
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": {"StreamMode": record.mode},
                    "StreamCreationTimestamp": record.created_s,
                }
            )
        answer: dict[str, Any] = {"StreamNames": page, "HasMoreStreams": more, "StreamSummaries": summaries}
        if more:
            answer["NextToken"] = _wrap_token("streams", page[-1])
        return answer

    def list_shards(self, request: ListShardsInput) -> dict[str, Any]:
        after = request.ExclusiveStartShardId
        if request.NextToken is not None:
            if request.StreamName is not None or request.StreamARN is not None:
                raise _invalid("NextToken and StreamName cannot be provided together.")
            name, after = _unwrap_token(request.NextToken, "shards").split("\x00")
        else:
            name = self._stream(request)
        if request.ShardFilter is not None and request.ShardFilter.Type == "AFTER_SHARD_ID":
            if request.ShardFilter.ShardId is None:
                raise _invalid("ShardFilter of type AFTER_SHARD_ID needs a ShardId.")
            after = request.ShardFilter.ShardId
        shards = self._shards(name)
        listed, more = self._shard_list(shards, after, min(request.MaxResults or 1000, 1000))
        answer: dict[str, Any] = {"Shards": listed}
        if more:
            answer["NextToken"] = _wrap_token("shards", f"{name}\x00{listed[-1]['ShardId']}")
        return answer

    # -- writing ---------------------------------------------------------------------------------
    def put_record(self, request: PutRecordInput) -> dict[str, Any]:
        name = self._stream(request)
        data = decode_blob(request.Data, "data")
        if len(data) + len(request.PartitionKey.encode()) > MAX_RECORD_BYTES:
            raise constraint_error(
                "data", None, f"Member must have length less than or equal to {MAX_RECORD_BYTES}"
            )
        entry = self._put(name, [(data, request.PartitionKey, request.ExplicitHashKey)])[0]
        if entry.get("ErrorCode") == THROTTLED:
            raise AwsError(THROTTLED, entry["ErrorMessage"])
        if "ErrorCode" in entry:
            raise AwsError(INTERNAL_ERROR, entry["ErrorMessage"], 500)
        return {**entry, "EncryptionType": "NONE"}

    def put_records(self, request: PutRecordsInput) -> dict[str, Any]:
        name = self._stream(request)
        records, total = [], 0
        for index, entry in enumerate(request.Records, start=1):
            data = decode_blob(entry.Data, f"records.{index}.member.data")
            size = len(data) + len(entry.PartitionKey.encode())
            if size > MAX_RECORD_BYTES:
                raise constraint_error(
                    f"records.{index}.member.data",
                    None,
                    f"Member must have length less than or equal to {MAX_RECORD_BYTES}",
                )
            total += size
            records.append((data, entry.PartitionKey, entry.ExplicitHashKey))
        if total > MAX_REQUEST_BYTES:
            raise _invalid("Records size exceeds 5 MB limit")
        results = self._put(name, records)
        failed = sum(1 for entry in results if "ErrorCode" in entry)
        return {"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"}

    def _put(self, stream: str, records: list[tuple[bytes, str, str | None]]) -> list[dict[str, str]]:
        """Send each record to its shard's partition; one result per record, in order. With quotas,
        a record its shard has no room for is not sent and fails with THROTTLED."""
        shards = self._shards(stream)
        partitions = []
        for _, key, explicit in records:
            if explicit is None:
                partitions.append(shard_for_key(key, shards))
                continue
            hash_key = parse_hash_key(explicit)
            if hash_key is None:
                msg = f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {explicit}"
                raise _invalid(msg)
            partitions.append(shard_for_hash_key(hash_key, shards))
        producer = self._get_producer()
        results: list[dict[str, str]] = []
        futures: list[Any] = []
        now = self.clock()
        for (data, key, _), partition in zip(records, partitions, strict=True):
            size = len(data) + len(key.encode())
            if self.quotas is not None and not self.quotas.admit_write(stream, partition, size, now):
                futures.append(_Throttled(write_throttled_message(stream, partition, ACCOUNT_ID)))
                continue
            try:
                futures.append(producer.send(stream, value=data, key=key.encode(), partition=partition))
            except KafkaError as exc:
                log.warning(
                    "a record for %s[%d] was not accepted by the producer: %s", stream, partition, exc
                )
                futures.append(None)
        with contextlib.suppress(KafkaError):
            producer.flush(timeout=self.timeout_s)
        for future in futures:
            if isinstance(future, _Throttled):
                results.append({"ErrorCode": THROTTLED, "ErrorMessage": future.message})
                continue
            try:
                if future is None:
                    raise KafkaError("not accepted")
                metadata = future.get(timeout=self.timeout_s)
            except KafkaError as exc:
                log.warning("a record to %s was not acknowledged: %s", stream, exc)
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Service Failure"})
                continue
            results.append(
                {
                    "SequenceNumber": sequence_number(metadata.partition, metadata.offset),
                    "ShardId": shard_name(metadata.partition),
                }
            )
        return results

    # -- reading ---------------------------------------------------------------------------------
    def get_shard_iterator(self, request: GetShardIteratorInput) -> dict[str, Any]:
        name = self._stream(request)
        shards = self._shards(name)
        partition = shard_partition(request.ShardId)
        if partition is None or partition >= shards:
            msg = f"Shard {request.ShardId} in stream {name} under account {ACCOUNT_ID} does not exist"
            raise AwsError("ResourceNotFoundException", msg)
        kind = request.ShardIteratorType
        tp = TopicPartition(name, partition)
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            given = request.StartingSequenceNumber
            if given is None:
                raise _invalid(f"StartingSequenceNumber is required for ShardIteratorType {kind}.")
            parsed = parse_sequence_number(given)
            if parsed is None or parsed[0] != partition:
                msg = f"StartingSequenceNumber {given} used in GetShardIterator on shard {request.ShardId} in stream {name} under account {ACCOUNT_ID} is invalid."
                raise _invalid(msg)
            offset = parsed[1] + (1 if kind == "AFTER_SEQUENCE_NUMBER" else 0)
        elif kind == "TRIM_HORIZON":
            offset = 0  # reading starts at the earliest offset retention left
        else:
            with self._consumer() as consumer:
                try:
                    if kind == "LATEST":
                        offset = consumer.end_offsets([tp], timeout_ms=int(self.timeout_s * 1000))[tp]
                    else:
                        if request.Timestamp is None:
                            raise _invalid("Timestamp is required for ShardIteratorType AT_TIMESTAMP.")
                        if not math.isfinite(request.Timestamp):
                            raise _invalid(f"Timestamp {request.Timestamp} is not a time.")
                        # a time past Kafka's (int64 milliseconds) range is simply after every record
                        wanted = {tp: min(max(0, int(request.Timestamp * 1000)), MAX_TIMESTAMP_MS)}
                        found = consumer.offsets_for_times(wanted, timeout_ms=int(self.timeout_s * 1000))[tp]
                        offset = (
                            found.offset
                            if found is not None
                            else consumer.end_offsets([tp], timeout_ms=int(self.timeout_s * 1000))[tp]
                        )
                except KafkaError as exc:
                    raise AwsError(INTERNAL_ERROR, f"could not read {name}[{partition}]: {exc}", 500) from exc
        position = ShardPosition(name, partition, offset, int(self.clock() * 1000))
        return {"ShardIterator": encode_iterator(position, self.secret)}

    def get_records(self, request: GetRecordsInput) -> dict[str, Any]:
        limit = request.Limit or MAX_GET_RECORDS
        if limit > MAX_GET_RECORDS:
            raise _invalid(f"Limit {limit} is larger than {MAX_GET_RECORDS:,}.")
        now_ms = int(self.clock() * 1000)
        position = decode_iterator(request.ShardIterator, self.secret, now_ms)
        if position.partition >= self._shards(position.stream):
            raise _not_found(position.stream)
        quotas = self.quotas
        if quotas is not None and not quotas.admit_read(position.stream, position.partition, self.clock()):
            raise AwsError(THROTTLED, read_throttled_message(position.stream, position.partition, ACCOUNT_ID))
        tp = TopicPartition(position.stream, position.partition)
        wait_ms = int(self.timeout_s * 1000)
        out: list[dict[str, Any]] = []
        returned = 0  # bytes of data + partition keys in `out`
        last_ts: int | None = None
        with self._consumer() as consumer:
            try:
                consumer.assign([tp])
                begin = consumer.beginning_offsets([tp], timeout_ms=wait_ms)[tp]
                end = consumer.end_offsets([tp], timeout_ms=wait_ms)[tp]
                next_offset = min(max(position.offset, begin), end)
                if next_offset < end:
                    consumer.seek(tp, next_offset)
                    size = 0
                    deadline = time.monotonic() + min(self.timeout_s, 2.0)
                    while len(out) < limit and next_offset < end and time.monotonic() < deadline:
                        batch = consumer.poll(timeout_ms=100, max_records=limit - len(out)).get(tp, [])
                        full = False
                        for record in batch:
                            size += len(record.value or b"") + len(record.key or b"")
                            if out and size > MAX_GET_BYTES:
                                full = True
                                break
                            out.append(_record_json(position.partition, record))
                            returned = size
                            last_ts = record.timestamp
                            next_offset = record.offset + 1
                        if full:
                            break
                        if not batch:  # only transaction markers or aborted records may be left
                            next_offset = max(next_offset, min(consumer.position(tp), end))
            except KafkaError as exc:
                raise AwsError(
                    INTERNAL_ERROR, f"could not read {tp.topic}[{tp.partition}]: {exc}", 500
                ) from exc
        if quotas is not None:
            quotas.charge_read(position.stream, position.partition, returned, self.clock())
        behind = 0 if next_offset >= end or last_ts is None else max(0, now_ms - last_ts)
        following = ShardPosition(position.stream, position.partition, next_offset, now_ms)
        return {
            "Records": out,
            "NextShardIterator": encode_iterator(following, self.secret),
            "MillisBehindLatest": behind,
        }


class _Throttled:
    """A record of `_put` its shard's quota had no room for."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _record_json(partition: int, record: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "SequenceNumber": sequence_number(partition, record.offset),
        "ApproximateArrivalTimestamp": record.timestamp / 1000,
        "Data": encode_blob(record.value or b""),
    }
    if record.key:
        entry["PartitionKey"] = record.key.decode("utf-8", "replace")
    return entry


def _wrap_token(kind: str, value: str) -> str:
    import base64

    return base64.urlsafe_b64encode(f"{kind}\x01{value}".encode()).decode()


def _unwrap_token(token: str, kind: str) -> str:
    import base64
    import binascii

    try:
        found, value = base64.urlsafe_b64decode(token.encode()).decode().split("\x01", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid(f"Invalid NextToken: {token[:40]}") from exc
    if found != kind:
        raise _invalid(f"Invalid NextToken: {token[:40]}")
    return value


def _unavailable(bootstrap: str, exc: Exception) -> AwsError:
    return AwsError(
        INTERNAL_ERROR,
        f"no Kafka broker answers at {bootstrap} ({exc.__class__.__name__}); {START_HINT}",
        500,
    )


def kinesis_actions(service: KinesisService) -> ActionTable:
    """The action table: Kinesis action name -> handler of a raw JSON 1.1 body."""

    def action(
        model: type[Any], handler: Callable[[Any], dict[str, Any]]
    ) -> Callable[[bytes], dict[str, Any]]:
        return lambda body: handler(parse_request(model, body))

    return {
        "CreateStream": action(CreateStreamInput, service.create_stream),
        "DeleteStream": action(DeleteStreamInput, service.delete_stream),
        "DescribeStream": action(DescribeStreamInput, service.describe_stream),
        "DescribeStreamSummary": action(StreamRef, service.describe_stream_summary),
        "ListStreams": action(ListStreamsInput, service.list_streams),
        "ListShards": action(ListShardsInput, service.list_shards),
        "PutRecord": action(PutRecordInput, service.put_record),
        "PutRecords": action(PutRecordsInput, service.put_records),
        "GetShardIterator": action(GetShardIteratorInput, service.get_shard_iterator),
        "GetRecords": action(GetRecordsInput, service.get_records),
    }
