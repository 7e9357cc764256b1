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
  of the shard the hash key falls in (`producers.kinesis_writes`). PutRecords is not atomic: a
  record Kafka does not acknowledge comes back with `ErrorCode` InternalFailure.
- Sequence numbers encode partition and offset (`producers.kinesis_sequence`); shard iterators
  are signed tokens that expire after 5 minutes (`producers.kinesis_iterators`).
- GetRecords reads the shard's partition with Kafka's Fetch request from the iterator's offset
  (read_committed: aborted transactions are never returned; `producers.kinesis_reads`). At most
  `Limit` (default and maximum 10,000) records and about 10 MiB a call.

Shard quotas are off unless the service is given `quotas` (`producers.kinesis_quotas`): then a
write over a shard's 1,000 records/s or 1 MiB/s is `ProvisionedThroughputExceededException` (HTTP
400 for PutRecord; PutRecords fails that record alone, with that `ErrorCode`, and counts it in
`FailedRecordCount`), and so is a GetRecords call over the shard's 5 calls/s or 2 MiB/s.

Streams are ACTIVE as soon as CreateStream returns; there is no resharding, consumers (enhanced
fan-out), tags or encryption: docs/aws-apis.md lists what differs.

The modules beside this one: `kinesis_requests` (request shapes, limits, PutRecords' parser),
`kinesis_kafka` (the Kafka clients and their loop), `kinesis_writes` (PutRecords' batches),
`kinesis_reads` (GetRecords' fetch and records), `kinesis_tokens` (NextToken),
`kinesis_errors` (AWS's errors), `kinesis_shards`, `kinesis_sequence`, `kinesis_iterators`,
`kinesis_quotas` and `kinesis_registry`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.errors import UnknownTopicOrPartitionError as UnknownTopicError
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from core.admin import create_topics
from core.aws_json import ActionTable, AwsError, constraint_error, decode_blob, parse_request
from core.errors import BrokerUnavailable, ConfigError
from core.settings import Settings
from core.topics import INTERNAL_TOPIC_PREFIX, KINESIS_RETENTION_MS, TopicSpec
from producers.kinesis_errors import ACCOUNT_ID, internal, invalid, not_found
from producers.kinesis_iterators import ShardPosition, decode_iterator, encode_iterator
from producers.kinesis_kafka import KafkaClients
from producers.kinesis_quotas import THROTTLED, ShardQuotas, read_throttled_message
from producers.kinesis_reads import LATEST, ReadAhead, ShardRead
from producers.kinesis_registry import REGISTRY_DIR, StreamRegistry
from producers.kinesis_requests import (
    MAX_GET_RECORDS,
    MAX_RECORD_BYTES,
    MAX_RECORDS,
    MAX_REQUEST_BYTES,
    CreateStreamInput,
    DeleteStreamInput,
    DescribeStreamInput,
    GetRecordsInput,
    GetShardIteratorInput,
    ListShardsInput,
    ListStreamsInput,
    PutRecordInput,
    PutRecordsCall,
    PutRecordsEntry,
    PutRecordsInput,
    StreamRef,
    parse_put_records,
)
from producers.kinesis_sequence import parse_sequence_number, sequence_number
from producers.kinesis_shards import hash_key_ranges, shard_partition
from producers.kinesis_shards import shard_id as shard_name
from producers.kinesis_tokens import unwrap_token, wrap_token
from producers.kinesis_writes import put_records

#: The target prefix of every Kinesis Data Streams action (botocore: metadata.targetPrefix).
TARGET_PREFIX = "Kinesis_20131202"
#: Shards one stream may have (AWS's default account quota in the largest regions: 500).
MAX_SHARDS = 500
#: On-demand streams start with 4 shards here (AWS starts them at 4 MiB/s of writes = 4 shards).
ON_DEMAND_SHARDS = 4
#: Topic config of streams made by CreateStream: Kinesis' 24 h retention; room for 1 MiB records.
_TOPIC_CONFIGS = {"retention.ms": str(KINESIS_RETENTION_MS), "max.message.bytes": str(2 * 1024 * 1024)}
_KNOWN_TTL_S = 5.0
#: The longest a GetRecords call keeps reading before it answers with what it has.
_READ_BUDGET_S = 2.0

__all__ = [
    "ACCOUNT_ID",
    "MAX_GET_RECORDS",
    "MAX_RECORDS",
    "TARGET_PREFIX",
    "CreateStreamInput",
    "DeleteStreamInput",
    "DescribeStreamInput",
    "GetRecordsInput",
    "GetShardIteratorInput",
    "KinesisService",
    "ListShardsInput",
    "ListStreamsInput",
    "PutRecordInput",
    "PutRecordsEntry",
    "PutRecordsInput",
    "StreamRef",
    "kinesis_actions",
]


class KinesisService:
    """The state behind the actions: the Kafka clients (`producers.kinesis_kafka`), the stream
    registry and the iterator secret. Thread-safe (handlers run in a thread pool); `close()`
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
        self.kafka = KafkaClients(
            bootstrap_servers, client_id=client_id, timeout_s=timeout_s, max_readers=max_consumers
        )
        self._known: dict[str, tuple[int, float]] = {}
        self.ahead = ReadAhead(max_pages=max_consumers)

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

    def close(self) -> None:
        """Close the producer (after sending what it holds), every consumer and the admin client."""
        self.ahead.forget()
        self.kafka.close()
        self.registry.close()

    # -- streams ---------------------------------------------------------------------------------
    def _stream(self, ref: StreamRef) -> str:
        """The stream's name; Kafka's internal topics (`__consumer_offsets`, `__transaction_state`)
        are no streams: ResourceNotFoundException, so no action can read, write or delete them."""
        if ref.StreamName is not None:
            name = ref.StreamName
        elif ref.StreamARN is not None:
            name = ref.StreamARN.split(":stream/", 1)[1]
        else:
            raise invalid("Either StreamName or StreamARN must be given.")
        if name.startswith(INTERNAL_TOPIC_PREFIX):
            raise not_found(name)
        return name

    def _shards(self, stream: str) -> int:
        """The stream's shard count (cached for a few seconds), or ResourceNotFoundException."""
        now = time.monotonic()
        known = self._known.get(stream)
        if known is not None and now - known[1] < _KNOWN_TTL_S:
            return known[0]
        with self.kafka.admin() as admin:
            described = admin.describe_topics([stream])
        partitions = sum(
            len(t["partitions"]) for t in described if t["error_code"] == 0 and t["name"] == stream
        )
        if partitions == 0:
            self._known.pop(stream, None)
            raise not_found(stream)
        self._known[stream] = (partitions, now)
        return partitions

    def arn(self, stream: str) -> str:
        return f"arn:aws:kinesis:{self.region}:{ACCOUNT_ID}:stream/{stream}"

    def create_stream(self, request: CreateStreamInput) -> dict[str, Any]:
        mode = request.StreamModeDetails.StreamMode if request.StreamModeDetails else "PROVISIONED"
        if mode == "ON_DEMAND":
            shards = ON_DEMAND_SHARDS
        elif request.ShardCount is None:
            raise invalid("ShardCount is required for a stream in PROVISIONED mode.")
        else:
            shards = request.ShardCount
        if shards > MAX_SHARDS:
            msg = f"This request would exceed the shard limit for the account {ACCOUNT_ID} in {self.region}. Current limit of shards is {MAX_SHARDS}. Number of additional shards that would have resulted from this request is {shards}."
            raise AwsError("LimitExceededException", msg)
        name = request.StreamName
        if name.startswith(INTERNAL_TOPIC_PREFIX):
            msg = f"Stream name {name!r}: names starting with {INTERNAL_TOPIC_PREFIX!r} are Kafka's internal topics here."
            raise invalid(msg)
        try:
            created = create_topics(self.bootstrap_servers, [TopicSpec(name, shards, dict(_TOPIC_CONFIGS))])
        except (BrokerUnavailable, ConfigError) as exc:
            if TopicAlreadyExistsError.__name__ in str(exc) or "already exists" in str(exc):
                created = []
            else:
                raise internal(str(exc)) from exc
        if not created:
            msg = f"Stream {name} under account {ACCOUNT_ID} already exists."
            raise AwsError("ResourceInUseException", msg)
        self.registry.put(name, mode, self.clock())
        self._known.pop(name, None)
        self.ahead.forget(name)
        if self.quotas is not None:
            self.quotas.forget(name)
        return {}

    def delete_stream(self, request: DeleteStreamInput) -> dict[str, Any]:
        name = self._stream(request)
        self._shards(name)
        try:
            with self.kafka.admin() as admin:
                admin.delete_topics([name], timeout_ms=int(self.timeout_s * 1000))
        except UnknownTopicOrPartitionError as exc:
            raise not_found(name) from exc
        self.registry.forget(name)
        self._known.pop(name, None)
        self.ahead.forget(name)
        if self.quotas is not None:
            self.quotas.forget(name)
        return {}

    def _retention_hours(self, stream: str) -> int:
        """The topic's retention.ms in whole hours (24 when the broker does not say)."""
        try:
            with self.kafka.admin() as admin:
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
            start = unwrap_token(request.NextToken, "streams")
        with self.kafka.admin() as admin:
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
            answer["NextToken"] = wrap_token("streams", page[-1])
        return answer

    def list_shards(self, request: ListShardsInput) -> dict[str, Any]:
        after = request.ExclusiveStartShardId
        if request.NextToken is not None:
            if request.StreamName is not None or request.StreamARN is not None:
                raise invalid("NextToken and StreamName cannot be provided together.")
            name, after = unwrap_token(request.NextToken, "shards").split("\x00")
        else:
            name = self._stream(request)
        if request.ShardFilter is not None and request.ShardFilter.Type == "AFTER_SHARD_ID":
            if request.ShardFilter.ShardId is None:
                raise invalid("ShardFilter of type AFTER_SHARD_ID needs a ShardId.")
            after = request.ShardFilter.ShardId
        shards = self._shards(name)
        listed, more = self._shard_list(shards, after, min(request.MaxResults or 1000, 1000))
        answer: dict[str, Any] = {"Shards": listed}
        if more:
            answer["NextToken"] = wrap_token("shards", f"{name}\x00{listed[-1]['ShardId']}")
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
            raise internal(entry["ErrorMessage"])
        return {**entry, "EncryptionType": "NONE"}

    def put_records(self, request: PutRecordsInput | PutRecordsCall) -> dict[str, Any]:
        call = request if isinstance(request, PutRecordsCall) else PutRecordsCall.of(request)
        name = self._stream(call.stream)
        records, total = [], 0
        for index, (text, key, explicit) in enumerate(call.records, start=1):
            data = decode_blob(text, f"records.{index}.member.data")
            size = len(data) + (len(key) if key.isascii() else len(key.encode()))
            if size > MAX_RECORD_BYTES:
                raise constraint_error(
                    f"records.{index}.member.data",
                    None,
                    f"Member must have length less than or equal to {MAX_RECORD_BYTES}",
                )
            total += size
            records.append((data, key, explicit))
        if total > MAX_REQUEST_BYTES:
            raise invalid("Records size exceeds 5 MB limit")
        results = self._put(name, records)
        failed = sum(1 for entry in results if "ErrorCode" in entry)
        return {"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"}

    def _put(self, stream: str, records: list[tuple[bytes, str, str | None]]) -> list[dict[str, str]]:
        return put_records(self.kafka, stream, records, self._shards(stream), self.quotas, self.clock())

    # -- reading ---------------------------------------------------------------------------------
    def _read_ahead(self, tp: TopicPartition, offset: int, limit: int) -> ShardRead | None:
        """The page read ahead for this call, if there is one and it answers the call."""
        page = self.ahead.take(tp, offset)
        if page is None:
            return None
        try:
            read = page.result(self.timeout_s)
            end_now = None
            if read.at_end and len(read.records) <= limit:  # does the shard still end there?
                with self.kafka.reader() as reader:
                    end_now = self.kafka.run(reader.list_offset(tp, LATEST))
        except Exception:  # a read ahead that failed or was dropped, or no answer: the call reads itself
            return None
        return read if read.answers(limit, end_now) else None

    def get_shard_iterator(self, request: GetShardIteratorInput) -> dict[str, Any]:
        name = self._stream(request)
        shards = self._shards(name)
        partition = shard_partition(request.ShardId)
        if partition is None or partition >= shards:
            msg = f"Shard {request.ShardId} in stream {name} under account {ACCOUNT_ID} does not exist"
            raise AwsError("ResourceNotFoundException", msg)
        kind = request.ShardIteratorType
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            given = request.StartingSequenceNumber
            if given is None:
                raise invalid(f"StartingSequenceNumber is required for ShardIteratorType {kind}.")
            parsed = parse_sequence_number(given)
            if parsed is None or parsed[0] != partition:
                msg = f"StartingSequenceNumber {given} used in GetShardIterator on shard {request.ShardId} in stream {name} under account {ACCOUNT_ID} is invalid."
                raise invalid(msg)
            offset = parsed[1] + (1 if kind == "AFTER_SEQUENCE_NUMBER" else 0)
        elif kind == "TRIM_HORIZON":
            offset = 0  # reading starts at the earliest offset retention left
        else:
            timestamp_ms = None
            if kind == "AT_TIMESTAMP":
                if request.Timestamp is None:
                    raise invalid("Timestamp is required for ShardIteratorType AT_TIMESTAMP.")
                if not math.isfinite(request.Timestamp):
                    raise invalid(f"Timestamp {request.Timestamp} is not a time.")
                timestamp_ms = int(request.Timestamp * 1000)  # a time past Kafka's range: after every record
            tp = TopicPartition(name, partition)
            with self.kafka.reader() as reader:
                try:
                    offset = self.kafka.run(reader.offset_at(tp, timestamp_ms))
                except (AioKafkaError, TimeoutError) as exc:
                    raise internal(f"could not read {name}[{partition}]: {exc!r}") from exc
        position = ShardPosition(name, partition, offset, int(self.clock() * 1000))
        return {"ShardIterator": encode_iterator(position, self.secret)}

    def get_records(self, request: GetRecordsInput) -> dict[str, Any]:
        limit = request.Limit or MAX_GET_RECORDS
        if limit > MAX_GET_RECORDS:
            raise invalid(f"Limit {limit} is larger than {MAX_GET_RECORDS:,}.")
        now_ms = int(self.clock() * 1000)
        position = decode_iterator(request.ShardIterator, self.secret, now_ms)
        if position.partition >= self._shards(position.stream):
            raise not_found(position.stream)
        quotas = self.quotas
        if quotas is not None and not quotas.admit_read(position.stream, position.partition, self.clock()):
            raise AwsError(THROTTLED, read_throttled_message(position.stream, position.partition, ACCOUNT_ID))
        tp = TopicPartition(position.stream, position.partition)
        budget_s = min(self.timeout_s, _READ_BUDGET_S)
        read = self._read_ahead(tp, position.offset, limit)
        if read is None:
            with self.kafka.reader() as reader:
                try:
                    read = self.kafka.run(reader.read(tp, position.offset, limit, budget_s))
                except UnknownTopicError as exc:
                    raise not_found(position.stream) from exc
                except (AioKafkaError, TimeoutError) as exc:
                    raise internal(f"could not read {tp.topic}[{tp.partition}]: {exc!r}") from exc
        if self.ahead.wanted(read):  # catching up: the next page is read while this one is answered
            offset = read.next_offset
            page = self.kafka.read_ahead(lambda reader: reader.read(tp, offset, limit, budget_s))
            if page is not None:
                self.ahead.put(tp, offset, page)
        if quotas is not None:
            quotas.charge_read(position.stream, position.partition, read.size, self.clock())
        last = read.last_timestamp_ms
        behind = 0 if read.next_offset >= read.end or last is None else max(0, now_ms - last)
        following = ShardPosition(position.stream, position.partition, read.next_offset, now_ms)
        return {
            "Records": read.records,
            "NextShardIterator": encode_iterator(following, self.secret),
            "MillisBehindLatest": behind,
        }


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
        "PutRecords": lambda body: service.put_records(parse_put_records(body)),
        "GetShardIterator": action(GetShardIteratorInput, service.get_shard_iterator),
        "GetRecords": action(GetRecordsInput, service.get_records),
    }
