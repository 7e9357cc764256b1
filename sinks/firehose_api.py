"""Amazon Data Firehose's actions over tidelake's delivery streams.

`firehose_actions(service)` is the action table `tidelake serve` answers `X-Amz-Target:
Firehose_20150804.<Action>` with: CreateDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams,
DeleteDeliveryStream, PutRecord and PutRecordBatch. Request shapes, limits and error codes follow
botocore's service model (`botocore/data/firehose/2015-08-04/service-2.json`) and the API reference:

- PutRecordBatch: 1-500 records a call (ValidationException at `records`); a record's data at most
  1,000 KiB = 1,024,000 bytes (ValidationException at `records.N.member.data`, `record.data` for
  PutRecord); a call's data at most 4 MiB (InvalidArgumentException `Records size exceeds 4 MB
  limit`, as Firehose words it). Not atomic: a record Kafka does not acknowledge comes back with
  `ErrorCode` ServiceUnavailableException, counted in `FailedPutCount`. `Encrypted` is false.
- `RecordId` is `<topic>:<partition>:<offset>` of the record in Kafka, the same id the Lambda-style
  transform hook sees as `recordId` (`sinks.transform`).
- Sources: `DirectPut` streams get their own topic `firehose.<DeliveryStreamName>` (4 partitions,
  24 h retention: Firehose keeps undelivered records for 24 hours); `KinesisStreamAsSource` streams
  read the topic of the Kinesis stream in `KinesisStreamARN` (`arn:aws:kinesis:<region>:
  000000000000:stream/<topic>`) from the moment they are created (Firehose's
  `DeliveryStartTimestamp`), and refuse PutRecord/PutRecordBatch as Firehose does.
- The destination: `sinks.firehose_config` (ExtendedS3DestinationConfiguration -> delivery stream).
- Lifecycle: `sinks.firehose_streams` (definitions under `<state folder>`, supervised sinks).

Kafka is reached with kafka-python directly (an idempotent producer with acks=all, and
`core.admin` for topics and groups); Kafka unreachable is ServiceUnavailableException.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import Field

from core.admin import START_HINT, admin_client, create_topics, delete_consumer_groups
from core.aws_json import ActionTable, AwsError, AwsModel, constraint_error, decode_blob, parse_request
from core.errors import BrokerUnavailable, ConfigError
from core.settings import Settings
from core.topics import INTERNAL_TOPIC_PREFIX, KINESIS_RETENTION_MS, TopicSpec
from sinks.firehose_config import (
    ExtendedS3DestinationConfigurationIn,
    FirehoseDelivery,
    consumer_group,
    firehose_delivery,
    invalid,
)
from sinks.firehose_streams import CREATING, DELETING, DefinitionStore, SupervisedSink
from sinks.ownership import DatasetClaims, owner_path, read_owner

log = logging.getLogger(__name__)

#: The target prefix of every Firehose action (botocore: metadata.targetPrefix).
TARGET_PREFIX = "Firehose_20150804"
ACCOUNT_ID = "000000000000"
#: The Kafka topic of a DirectPut stream is this prefix + the stream's name.
TOPIC_PREFIX = "firehose."
MAX_BATCH_RECORDS = 500
MAX_RECORD_BYTES = 1_024_000
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: Firehose streams per account and region (AWS: 5,000 by default).
MAX_STREAMS = 5_000
TOPIC_PARTITIONS = 4
_TOPIC_CONFIGS = {"retention.ms": str(KINESIS_RETENTION_MS), "max.message.bytes": str(2 * 1024 * 1024)}
DESTINATION_ID = "destinationId-000000000001"
UNAVAILABLE = "ServiceUnavailableException"

# -- request shapes (botocore's Firehose model, 2015-08-04) ---------------------------------------
NameStr = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")]
KinesisArnStr = Annotated[
    str,
    Field(
        min_length=1, max_length=512, pattern=r"^arn:.*:kinesis:[a-zA-Z0-9\-]+:\d{12}:stream/[a-zA-Z0-9_.-]+$"
    ),
]
RoleArnStr = Annotated[
    str, Field(min_length=1, max_length=512, pattern=r"^arn:.*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+$")
]
StreamType = Literal["DirectPut", "KinesisStreamAsSource", "MSKAsSource", "DatabaseAsSource"]


class DirectPutSourceConfigurationIn(AwsModel):
    ThroughputHintInMBs: Annotated[int, Field(ge=1, le=100)]


class KinesisStreamSourceConfigurationIn(AwsModel):
    KinesisStreamARN: KinesisArnStr
    RoleARN: RoleArnStr


class TagIn(AwsModel):
    Key: Annotated[str, Field(min_length=1, max_length=128)]
    Value: Annotated[str, Field(max_length=256)] | None = None


class CreateDeliveryStreamInput(AwsModel):
    DeliveryStreamName: NameStr
    DeliveryStreamType: StreamType | None = None
    DirectPutSourceConfiguration: DirectPutSourceConfigurationIn | None = None
    KinesisStreamSourceConfiguration: KinesisStreamSourceConfigurationIn | None = None
    DeliveryStreamEncryptionConfigurationInput: dict[str, Any] | None = None
    S3DestinationConfiguration: dict[str, Any] | None = None
    ExtendedS3DestinationConfiguration: ExtendedS3DestinationConfigurationIn | None = None
    RedshiftDestinationConfiguration: dict[str, Any] | None = None
    ElasticsearchDestinationConfiguration: dict[str, Any] | None = None
    AmazonopensearchserviceDestinationConfiguration: dict[str, Any] | None = None
    SplunkDestinationConfiguration: dict[str, Any] | None = None
    HttpEndpointDestinationConfiguration: dict[str, Any] | None = None
    AmazonOpenSearchServerlessDestinationConfiguration: dict[str, Any] | None = None
    SnowflakeDestinationConfiguration: dict[str, Any] | None = None
    IcebergDestinationConfiguration: dict[str, Any] | None = None
    MSKSourceConfiguration: dict[str, Any] | None = None
    DatabaseSourceConfiguration: dict[str, Any] | None = None
    Tags: Annotated[list[TagIn], Field(min_length=1, max_length=50)] | None = None


class DescribeDeliveryStreamInput(AwsModel):
    DeliveryStreamName: NameStr
    Limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    ExclusiveStartDestinationId: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class ListDeliveryStreamsInput(AwsModel):
    Limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    DeliveryStreamType: StreamType | None = None
    ExclusiveStartDeliveryStreamName: NameStr | None = None


class DeleteDeliveryStreamInput(AwsModel):
    DeliveryStreamName: NameStr
    AllowForceDelete: bool | None = None


class RecordIn(AwsModel):
    Data: str


class PutRecordInput(AwsModel):
    DeliveryStreamName: NameStr
    Record: RecordIn


class PutRecordBatchInput(AwsModel):
    DeliveryStreamName: NameStr
    Records: Annotated[list[RecordIn], Field(min_length=1, max_length=MAX_BATCH_RECORDS)]


_OTHER_DESTINATIONS = (
    "S3DestinationConfiguration", "RedshiftDestinationConfiguration", "ElasticsearchDestinationConfiguration",
    "AmazonopensearchserviceDestinationConfiguration", "SplunkDestinationConfiguration",
    "HttpEndpointDestinationConfiguration", "AmazonOpenSearchServerlessDestinationConfiguration",
    "SnowflakeDestinationConfiguration", "IcebergDestinationConfiguration",
)  # fmt: skip


def _tags(request: CreateDeliveryStreamInput) -> dict[str, str]:
    return {tag.Key: tag.Value or "" for tag in request.Tags or []}


def direct_put_topic(name: str) -> str:
    """The Kafka topic a DirectPut stream's records go to."""
    return f"{TOPIC_PREFIX}{name}"


def _not_found(name: str) -> AwsError:
    return AwsError(
        "ResourceNotFoundException", f"Firehose stream {name} under account {ACCOUNT_ID} not found."
    )


def _unavailable(bootstrap: str, exc: Exception) -> AwsError:
    return AwsError(
        UNAVAILABLE, f"no Kafka broker answers at {bootstrap} ({exc.__class__.__name__}); {START_HINT}", 503
    )


class _Stream:
    """A stream as the service holds it: its definition, its delivery and its supervised sink."""

    def __init__(
        self, definition: dict[str, Any], delivery: FirehoseDelivery, runner: SupervisedSink | None
    ) -> None:
        self.definition = definition
        self.delivery = delivery
        self.runner = runner
        self.deleting = definition.get("status") == DELETING

    @property
    def name(self) -> str:
        return str(self.definition["name"])

    @property
    def kind(self) -> str:
        return str(self.definition["type"])

    @property
    def status(self) -> str:
        if self.deleting:
            return DELETING
        return self.runner.status if self.runner is not None else CREATING


class FirehoseService:
    """The state behind the actions: the stream definitions (under `state_dir`), a supervised sink
    per stream, and one idempotent producer. Thread-safe (handlers run in a thread pool).

        service = FirehoseService(settings, settings.runtime.state_dir / "firehose")
        service.start()    # brings back the streams defined before
        ...
        service.close()    # every sink flushes, commits and stops; the producer closes

    `region` appears in ARNs; `max_streams` is the account's quota (LimitExceededException)."""

    def __init__(
        self,
        settings: Settings,
        state_dir: Path | None = None,
        *,
        region: str = "us-east-1",
        max_streams: int = MAX_STREAMS,
        timeout_s: float = 10.0,
        restart_backoff_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.settings = settings
        self.bootstrap = settings.kafka.bootstrap_servers
        self.store = DefinitionStore(state_dir or settings.runtime.state_dir / "firehose")
        self.region = region
        self.max_streams = max_streams
        self.timeout_s = timeout_s
        self.restart_backoff_s = restart_backoff_s
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.RLock()
        self._producer: KafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._finishers: list[threading.Thread] = []
        self._started = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FirehoseService:
        """The service of `tidelake serve`: definitions under `<runtime.state_dir>/firehose/`."""
        return cls(settings, settings.runtime.state_dir / "firehose")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Run every stored stream again (a delete that was under way is finished)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            for name, definition in self.store.load().items():
                try:
                    delivery = self._delivery(definition)
                except AwsError as exc:  # a definition this version refuses: kept, not run
                    log.error("Firehose stream %s cannot run: %s", name, exc.text)
                    continue
                if definition.get("status") == DELETING:
                    stream = _Stream(definition, delivery, None)
                    self._streams[name] = stream
                    self._finish_delete(stream)
                    continue
                self._run(definition, delivery)

    def close(self) -> None:
        """Stop every sink (each flushes what it holds and commits), then close the producer."""
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
            self._started = False
        for stream in streams:
            if stream.runner is not None:
                stream.runner.stop()
        for stream in streams:
            if stream.runner is not None and not stream.runner.join():
                log.warning("Firehose stream %s did not stop within its timeout", stream.name)
        for finisher in self._finishers:
            finisher.join(timeout=30)
        with self._producer_lock:
            if self._producer is not None:
                with contextlib.suppress(KafkaError):
                    self._producer.close(timeout=self.timeout_s)
                self._producer = None

    def _run(self, definition: dict[str, Any], delivery: FirehoseDelivery) -> _Stream:
        runner = SupervisedSink(
            str(definition["name"]), delivery, self.settings, backoff_s=self.restart_backoff_s
        )
        stream = _Stream(definition, delivery, runner)
        self._streams[stream.name] = stream
        runner.start()
        return stream

    def _delivery(self, definition: dict[str, Any]) -> FirehoseDelivery:
        request = CreateDeliveryStreamInput.model_validate(definition["request"])
        assert request.ExtendedS3DestinationConfiguration is not None
        return firehose_delivery(
            request.DeliveryStreamName,
            request.ExtendedS3DestinationConfiguration,
            topic=str(definition["topic"]),
            lake=self.settings.lake.root,
            tags=_tags(request),
            hook_modules=self.settings.query.firehose_hook_modules,
        )

    # -- Kafka -----------------------------------------------------------------------------------
    def _get_producer(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        bootstrap_timeout_ms=int(self.timeout_s * 1000),
                        client_id=f"{self.settings.kafka.client_id}-firehose",
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=5,
                        batch_size=256 * 1024,
                        compression_type="lz4",
                        max_request_size=MAX_BATCH_BYTES + 1024 * 1024,
                        max_block_ms=int(self.timeout_s * 1000),
                        allow_auto_create_topics=False,
                    )
                except KafkaError as exc:
                    raise _unavailable(self.bootstrap, exc) from exc
            return self._producer

    def _topic_partitions(self, topic: str) -> int:
        """The number of partitions of `topic` (0 when it does not exist)."""
        try:
            with admin_client(self.bootstrap, int(self.timeout_s * 1000)) as admin:
                described = admin.describe_topics([topic])
        except (KafkaError, BrokerUnavailable) as exc:
            raise _unavailable(self.bootstrap, exc) from exc
        return sum(len(t["partitions"]) for t in described if t["error_code"] == 0 and t["name"] == topic)

    def _start_at_the_end(self, topic: str, group: str) -> None:
        """Commit the log-end offsets of `topic` for `group`: the sink reads what arrives from now on
        (Firehose reads a Kinesis source from when the delivery stream was created)."""
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=group,
                enable_auto_commit=False,
                request_timeout_ms=int(self.timeout_s * 1000) + 5000,
            )
        except KafkaError as exc:
            raise _unavailable(self.bootstrap, exc) from exc
        try:
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
            consumer.assign(partitions)
            ends = consumer.end_offsets(partitions)
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
        except KafkaError as exc:
            raise _unavailable(self.bootstrap, exc) from exc
        finally:
            consumer.close(autocommit=False)

    # -- actions: streams -----------------------------------------------------------------------
    def arn(self, name: str) -> str:
        return f"arn:aws:firehose:{self.region}:{ACCOUNT_ID}:deliverystream/{name}"

    def create_delivery_stream(self, request: CreateDeliveryStreamInput) -> dict[str, Any]:
        name = request.DeliveryStreamName
        kind = request.DeliveryStreamType or "DirectPut"
        if kind not in ("DirectPut", "KinesisStreamAsSource"):
            raise invalid(
                f"DeliveryStreamType {kind} is not supported by tidelake: use DirectPut or KinesisStreamAsSource"
            )
        if any(getattr(request, d) is not None for d in _OTHER_DESTINATIONS):
            raise invalid("tidelake delivers to its lake only: give ExtendedS3DestinationConfiguration")
        destination = request.ExtendedS3DestinationConfiguration
        if destination is None:
            raise invalid("ExtendedS3DestinationConfiguration is required")
        source = request.KinesisStreamSourceConfiguration
        if kind == "KinesisStreamAsSource":
            if source is None:
                raise invalid(
                    "KinesisStreamSourceConfiguration is required for DeliveryStreamType KinesisStreamAsSource"
                )
            topic = source.KinesisStreamARN.split(":stream/", 1)[1]
            if topic.startswith(INTERNAL_TOPIC_PREFIX):
                raise invalid(
                    f"{source.KinesisStreamARN} is Kafka's internal topic {topic}, not a Kinesis stream"
                )
        else:
            if source is not None:
                raise invalid(
                    "KinesisStreamSourceConfiguration is only for DeliveryStreamType KinesisStreamAsSource"
                )
            topic = direct_put_topic(name)
        with self._lock:
            if name in self._streams:
                raise AwsError(
                    "ResourceInUseException",
                    f"Firehose stream {name} under account {ACCOUNT_ID} already exists.",
                )
            if len(self._streams) >= self.max_streams:
                msg = f"You have already consumed your firehose quota of {self.max_streams} hoses. Firehose names: {sorted(self._streams)[:5]}..."
                raise AwsError("LimitExceededException", msg)
            delivery = firehose_delivery(
                name,
                destination,
                topic=topic,
                lake=self.settings.lake.root,
                auto_offset_reset="earliest",
                tags=_tags(request),
                hook_modules=self.settings.query.firehose_hook_modules,
            )
            for note in delivery.notes:
                log.info("Firehose stream %s: %s", name, note)
            claims = DatasetClaims(
                self.settings.lake.root, delivery.config.name, delivery.config.consumer_group
            )
            try:
                claims.claim(delivery.dataset)
            except ConfigError as exc:
                raise invalid(str(exc)) from exc
            if kind == "KinesisStreamAsSource":
                if self._topic_partitions(topic) == 0:
                    raise invalid(
                        f"Kinesis stream {topic} under account {ACCOUNT_ID} not found (no Kafka topic {topic!r})."
                    )
                self._start_at_the_end(topic, delivery.config.consumer_group)
            else:
                try:
                    create_topics(self.bootstrap, [TopicSpec(topic, TOPIC_PARTITIONS, dict(_TOPIC_CONFIGS))])
                except BrokerUnavailable as exc:
                    raise _unavailable(self.bootstrap, exc) from exc
                except ConfigError as exc:
                    raise invalid(str(exc)) from exc
                # a topic left by a deleted stream of the same name: start after its records, so the
                # offsets, and the files named after them, go on instead of overwriting the first's
                self._start_at_the_end(topic, delivery.config.consumer_group)
            definition = {
                "name": name,
                "type": kind,
                "topic": topic,
                "created_s": time.time(),
                "request": request.model_dump(mode="json", exclude_none=True),
            }
            self.store.put(name, definition)
            self._run(definition, delivery)
        return {"DeliveryStreamARN": self.arn(name)}

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            raise _not_found(name)
        return stream

    def describe_delivery_stream(self, request: DescribeDeliveryStreamInput) -> dict[str, Any]:
        with self._lock:
            stream = self._stream(request.DeliveryStreamName)
        definition = stream.definition
        given = definition["request"]
        destination = dict(given["ExtendedS3DestinationConfiguration"])
        config = stream.delivery.config
        destination.setdefault("BufferingHints", {})
        destination["BufferingHints"] = {
            "SizeInMBs": int(config.buffer.size_mb),
            "IntervalInSeconds": int(config.buffer.interval_s),
        }
        destination.setdefault("CompressionFormat", "UNCOMPRESSED")
        destination.setdefault("EncryptionConfiguration", {"NoEncryptionConfig": "NoEncryption"})
        destination.setdefault("S3BackupMode", "Disabled")
        description: dict[str, Any] = {
            "DeliveryStreamName": stream.name,
            "DeliveryStreamARN": self.arn(stream.name),
            "DeliveryStreamStatus": stream.status,
            "DeliveryStreamType": stream.kind,
            "DeliveryStreamEncryptionConfiguration": {"Status": "DISABLED"},
            "VersionId": "1",
            "CreateTimestamp": definition["created_s"],
            "Destinations": [
                {"DestinationId": DESTINATION_ID, "ExtendedS3DestinationDescription": destination}
            ],
            "HasMoreDestinations": False,
        }
        if stream.kind == "KinesisStreamAsSource":
            source = given["KinesisStreamSourceConfiguration"]
            description["Source"] = {
                "KinesisStreamSourceDescription": {
                    **source,
                    "DeliveryStartTimestamp": definition["created_s"],
                }
            }
        elif "DirectPutSourceConfiguration" in given:
            description["Source"] = {"DirectPutSourceDescription": given["DirectPutSourceConfiguration"]}
        if stream.runner is not None and stream.runner.status == "CREATING_FAILED" and stream.runner.failure:
            description["FailureDescription"] = {"Type": "UNKNOWN_ERROR", "Details": stream.runner.failure}
        return {"DeliveryStreamDescription": description}

    def list_delivery_streams(self, request: ListDeliveryStreamsInput) -> dict[str, Any]:
        with self._lock:
            names = sorted(
                s.name
                for s in self._streams.values()
                if request.DeliveryStreamType is None or s.kind == request.DeliveryStreamType
            )
        if request.ExclusiveStartDeliveryStreamName is not None:
            names = [n for n in names if n > request.ExclusiveStartDeliveryStreamName]
        limit = request.Limit or 10
        return {"DeliveryStreamNames": names[:limit], "HasMoreDeliveryStreams": len(names) > limit}

    def delete_delivery_stream(self, request: DeleteDeliveryStreamInput) -> dict[str, Any]:
        name = request.DeliveryStreamName
        with self._lock:
            stream = self._stream(name)
            if stream.status == CREATING:
                msg = f"Firehose stream {name} under account {ACCOUNT_ID} is in CREATING state; it cannot be deleted until it is ACTIVE or CREATING_FAILED."
                raise AwsError("ResourceInUseException", msg)
            if stream.deleting:
                return {}
            stream.deleting = True
            stream.definition = {**stream.definition, "status": DELETING}
            self.store.put(name, stream.definition)
            self._finish_delete(stream)
        return {}

    def _finish_delete(self, stream: _Stream) -> None:
        """In the background: stop the sink, delete its consumer group, give the dataset up, forget
        the definition (the DirectPut topic stays: see `create_delivery_stream`). The stream is
        DELETING until then."""

        def finish() -> None:
            if stream.runner is not None:
                stream.runner.stop()
                stream.runner.join()
            config = stream.delivery.config
            try:
                # the DirectPut topic is kept (its records expire with its retention): a stream made
                # again under this name goes on after its offsets, so no file of this one is rewritten
                delete_consumer_groups(
                    self.bootstrap, [consumer_group(stream.name)], timeout_s=self.timeout_s
                )
            except (KafkaError, BrokerUnavailable, ConfigError) as exc:
                log.warning(
                    "deleting Firehose stream %s: %s (its topic or group may be left)", stream.name, exc
                )
            path = owner_path(self.settings.lake.root, stream.delivery.dataset)
            with contextlib.suppress(ConfigError, OSError):
                owner = read_owner(path)
                if owner is not None and (owner.delivery_stream, owner.consumer_group) == (
                    config.name,
                    config.consumer_group,
                ):
                    path.unlink()
            self.store.forget(stream.name)
            with self._lock:
                if self._streams.get(stream.name) is stream:
                    del self._streams[stream.name]

        thread = threading.Thread(target=finish, name=f"firehose-delete-{stream.name}", daemon=True)
        self._finishers.append(thread)
        thread.start()

    # -- actions: records ------------------------------------------------------------------------
    def _writable(self, name: str) -> _Stream:
        with self._lock:
            stream = self._stream(name)
        if stream.deleting:
            raise _not_found(name)
        if stream.kind == "KinesisStreamAsSource":
            raise invalid("This operation is not permitted on KinesisStreamAsSource delivery stream type.")
        return stream

    def put_record(self, request: PutRecordInput) -> dict[str, Any]:
        stream = self._writable(request.DeliveryStreamName)
        data = decode_blob(request.Record.Data, "record.data")
        if len(data) > MAX_RECORD_BYTES:
            raise constraint_error(
                "record.data", None, f"Member must have length less than or equal to {MAX_RECORD_BYTES}"
            )
        result = self._put(str(stream.definition["topic"]), [data])[0]
        if "ErrorCode" in result:
            raise AwsError(UNAVAILABLE, result["ErrorMessage"], 503)
        return {"RecordId": result["RecordId"], "Encrypted": False}

    def put_record_batch(self, request: PutRecordBatchInput) -> dict[str, Any]:
        stream = self._writable(request.DeliveryStreamName)
        records, total = [], 0
        for index, record in enumerate(request.Records, start=1):
            data = decode_blob(record.Data, f"records.{index}.member.data")
            if len(data) > MAX_RECORD_BYTES:
                raise constraint_error(
                    f"records.{index}.member.data",
                    None,
                    f"Member must have length less than or equal to {MAX_RECORD_BYTES}",
                )
            total += len(data)
            records.append(data)
        if total > MAX_BATCH_BYTES:
            raise invalid("Records size exceeds 4 MB limit")
        results = self._put(str(stream.definition["topic"]), records)
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": results}

    def _put(self, topic: str, records: list[bytes]) -> list[dict[str, str]]:
        producer = self._get_producer()
        futures = []
        for data in records:
            try:
                futures.append(producer.send(topic, value=data))
            except KafkaError as exc:
                log.warning("a record for %s was not accepted by the producer: %s", topic, exc)
                futures.append(None)
        with contextlib.suppress(KafkaError):
            producer.flush(timeout=self.timeout_s)
        results: list[dict[str, str]] = []
        for future in futures:
            try:
                if future is None:
                    raise KafkaError("not accepted")
                metadata = future.get(timeout=self.timeout_s)
            except KafkaError as exc:
                log.warning("a record to %s was not acknowledged: %s", topic, exc)
                results.append({"ErrorCode": UNAVAILABLE, "ErrorMessage": "Slow down."})
                continue
            results.append({"RecordId": f"{metadata.topic}:{metadata.partition}:{metadata.offset}"})
        return results

    # -- for tests and `tidelake serve` ----------------------------------------------------------
    def status(self, name: str) -> str | None:
        """The stream's DeliveryStreamStatus, or None when there is no such stream."""
        with self._lock:
            stream = self._streams.get(name)
        return stream.status if stream is not None else None

    def flush_target(self, name: str) -> tuple[str, str, str, SupervisedSink | None]:
        """(source topic, consumer group, dataset, running sink or None) of stream `name`, for a
        forced flush (`sinks.firehose_flush`); ResourceNotFoundException when there is no such stream
        or it is being deleted."""
        with self._lock:
            stream = self._stream(name)
        if stream.deleting:
            raise _not_found(name)
        config = stream.delivery.config
        return str(stream.definition["topic"]), config.consumer_group, stream.delivery.dataset, stream.runner

    def restarts(self, name: str) -> tuple[int, str | None]:
        """How often the stream's sink was restarted after a failure, and the last failure."""
        with self._lock:
            stream = self._streams.get(name)
        runner = stream.runner if stream is not None else None
        return (runner.restarts, runner.failure) if runner is not None else (0, None)


def firehose_actions(service: FirehoseService) -> ActionTable:
    """The action table: Firehose action name -> handler of a raw JSON 1.1 body."""

    def action(
        model: type[Any], handler: Callable[[Any], dict[str, Any]]
    ) -> Callable[[bytes], dict[str, Any]]:
        return lambda body: handler(parse_request(model, body))

    return {
        "CreateDeliveryStream": action(CreateDeliveryStreamInput, service.create_delivery_stream),
        "DescribeDeliveryStream": action(DescribeDeliveryStreamInput, service.describe_delivery_stream),
        "ListDeliveryStreams": action(ListDeliveryStreamsInput, service.list_delivery_streams),
        "DeleteDeliveryStream": action(DeleteDeliveryStreamInput, service.delete_delivery_stream),
        "PutRecord": action(PutRecordInput, service.put_record),
        "PutRecordBatch": action(PutRecordBatchInput, service.put_record_batch),
    }
