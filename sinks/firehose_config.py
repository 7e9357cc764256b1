"""Firehose's ExtendedS3DestinationConfiguration as a tidelake delivery stream (`DeliveryStreamConfig`).

The request shapes are botocore's (`firehose/2015-08-04/service-2.json`, with its limits); `firehose_delivery`
maps one destination onto what the sinks already do, or raises `AwsError` InvalidArgumentException
saying what tidelake does not do. The rules (docs/aws-apis.md has the full table):

- **Bucket and dataset.** Any `BucketARN` is the lake (`settings.lake.root`). The first folder of
  `Prefix` names the dataset (`orders/region=!{partitionKeyFromQuery:region}/` -> dataset `orders`,
  layout `region=.../`), made a valid table name as topics are (`raw-events` -> `raw_events`); a
  first folder that does not start with a letter (`_sinks`, `..`, `.hidden`) or holds other
  characters is refused. A
  `Prefix` that is empty, or whose first folder holds an expression, puts the records in the dataset
  named after the delivery stream. A layout with no `!{timestamp:...}` and no dynamic partitioning
  gets Firehose's default `!{timestamp:yyyy/MM/dd/HH}/` appended, as Firehose appends it.
- **Time.** `!{timestamp:...}` is the record's arrival time (the Kafka record's timestamp), as in
  Firehose, in UTC (`CustomTimeZone` other than UTC is refused).
- **Errors.** Failed records go to `_errors/<dataset>/<error type>/` (the lake's rule), then the part
  of `ErrorOutputPrefix` after `!{firehose:error-output-type}`; without one, `!{timestamp:yyyy/MM/dd/HH}/`.
- **Buffering.** `SizeInMBs` (1-128; with format conversion at least 64, default 128, as AWS) and
  `IntervalInSeconds` (0-900, default 300) become the sink's `[buffer]`.
- **Format.** `DataFormatConversionConfiguration` with an OpenX or Hive JSON deserializer and the
  `ParquetSerDe` (SNAPPY, GZIP or UNCOMPRESSED) is the sink's JSON -> Parquet conversion. The schema
  is the columns of the lake dataset `SchemaConfiguration.TableName` when it exists (read from a
  Parquet footer: tidelake's catalog is the lake; only from a dataset folder that is a real
  directory, never through a link), else inferred. ORC, and delivery without format
  conversion (raw bytes), are refused.
- **Dynamic partitioning.** A `MetadataExtraction` processor's jq query gives the values of
  `!{partitionKeyFromQuery:key}`; see `sinks.firehose_processing` for how it is evaluated.
- **Processors.** `Lambda`'s `LambdaArn` is a transform hook's import path `package.module:function`
  (`sinks.transform`), in a module the serve operator allowed (setting `query.firehose_hook_modules`,
  checked before any import; empty: no Lambda processor); `AppendDelimiterToRecord` has nothing to
  do (a Parquet row is a record).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from core.aws_json import AwsError, AwsModel
from core.errors import ConfigError
from core.lake import DATASET_NAME, check_dataset_name, dataset_for_topic, is_visible_file
from sinks.config import FIREHOSE_DEFAULT_PREFIX, STREAM_NAME, DeliveryStreamConfig, parse_config
from sinks.firehose_processing import (
    MetadataQuery,
    check_hook_module,
    parse_metadata_query,
    processing_handler,
)
from sinks.prefixes import PrefixTemplate
from sinks.schemas import TYPES, type_name
from sinks.transform import Handler, load_handler

#: Firehose's defaults (API reference, BufferingHints): 5 MiB / 300 s; with format conversion the
#: buffer is 128 MiB by default and at least 64 MiB (Firehose record format conversion).
DEFAULT_SIZE_MB, DEFAULT_INTERVAL_S = 5, 300
CONVERSION_DEFAULT_SIZE_MB, CONVERSION_MIN_SIZE_MB = 128, 64
#: The Tag whose value declares the columns inline (tidelake's extension; `inline_schema`).
SCHEMA_TAG = "tidelake:schema"
#: Where errors go below `_errors/<dataset>/<error type>/` when ErrorOutputPrefix says nothing.
DEFAULT_ERROR_LAYOUT = "!{timestamp:yyyy/MM/dd/HH}/"
ERROR_TYPE_EXPRESSION = "!{firehose:error-output-type}"
_PARQUET_COMPRESSION = {"SNAPPY": "snappy", "GZIP": "gzip", "UNCOMPRESSED": "none"}
#: Column types a declared schema can hold (`sinks.schemas.TYPES`); other footers mean: infer.
_DECLARABLE = {type_name(t) for t in TYPES.values()}

# -- request shapes (botocore's Firehose model, 2015-08-04) ---------------------------------------
RoleArnStr = Annotated[
    str, Field(min_length=1, max_length=512, pattern=r"^arn:.*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+$")
]
BucketArnStr = Annotated[
    str, Field(min_length=1, max_length=2048, pattern=r"^arn:.*:s3:::[A-Za-z0-9_.\-]{1,255}$")
]
PrefixStr = Annotated[str, Field(max_length=1024)]
NonEmptyNoSpace = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^\S+$")]
NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]


class BufferingHintsIn(AwsModel):
    SizeInMBs: Annotated[int, Field(ge=1, le=128)] | None = None
    IntervalInSeconds: Annotated[int, Field(ge=0, le=900)] | None = None


class ProcessorParameterIn(AwsModel):
    ParameterName: Literal[
        "LambdaArn", "NumberOfRetries", "MetadataExtractionQuery", "JsonParsingEngine", "RoleArn",
        "BufferSizeInMBs", "BufferIntervalInSeconds", "SubRecordType", "Delimiter", "CompressionFormat",
        "DataMessageExtraction",
    ]  # fmt: skip
    ParameterValue: Annotated[str, Field(min_length=1, max_length=5120)]


class ProcessorIn(AwsModel):
    Type: Literal[
        "RecordDeAggregation", "Decompression", "CloudWatchLogProcessing", "Lambda", "MetadataExtraction",
        "AppendDelimiterToRecord",
    ]  # fmt: skip
    Parameters: list[ProcessorParameterIn] | None = None

    def parameter(self, name: str) -> str | None:
        return next((p.ParameterValue for p in self.Parameters or [] if p.ParameterName == name), None)


class ProcessingConfigurationIn(AwsModel):
    Enabled: bool | None = None
    Processors: list[ProcessorIn] | None = None


class SchemaConfigurationIn(AwsModel):
    RoleARN: NonEmptyNoSpace | None = None
    CatalogId: NonEmptyNoSpace | None = None
    DatabaseName: NonEmptyNoSpace | None = None
    TableName: NonEmptyNoSpace | None = None
    Region: NonEmptyNoSpace | None = None
    VersionId: NonEmptyNoSpace | None = None


class OpenXJsonSerDeIn(AwsModel):
    ConvertDotsInJsonKeysToUnderscores: bool | None = None
    CaseInsensitive: bool | None = None
    ColumnToJsonKeyMappings: dict[str, str] | None = None


class HiveJsonSerDeIn(AwsModel):
    TimestampFormats: list[NonEmpty] | None = None


class DeserializerIn(AwsModel):
    OpenXJsonSerDe: OpenXJsonSerDeIn | None = None
    HiveJsonSerDe: HiveJsonSerDeIn | None = None


class InputFormatConfigurationIn(AwsModel):
    Deserializer: DeserializerIn | None = None


class ParquetSerDeIn(AwsModel):
    BlockSizeBytes: Annotated[int, Field(ge=67_108_864)] | None = None
    PageSizeBytes: Annotated[int, Field(ge=65_536)] | None = None
    Compression: Literal["UNCOMPRESSED", "GZIP", "SNAPPY"] | None = None
    EnableDictionaryCompression: bool | None = None
    MaxPaddingBytes: Annotated[int, Field(ge=0)] | None = None
    WriterVersion: Literal["V1", "V2"] | None = None


class SerializerIn(AwsModel):
    ParquetSerDe: ParquetSerDeIn | None = None
    OrcSerDe: dict[str, Any] | None = None


class OutputFormatConfigurationIn(AwsModel):
    Serializer: SerializerIn | None = None


class DataFormatConversionConfigurationIn(AwsModel):
    SchemaConfiguration: SchemaConfigurationIn | None = None
    InputFormatConfiguration: InputFormatConfigurationIn | None = None
    OutputFormatConfiguration: OutputFormatConfigurationIn | None = None
    Enabled: bool | None = None


class RetryOptionsIn(AwsModel):
    DurationInSeconds: Annotated[int, Field(ge=0, le=7200)] | None = None


class DynamicPartitioningConfigurationIn(AwsModel):
    RetryOptions: RetryOptionsIn | None = None
    Enabled: bool | None = None


class ExtendedS3DestinationConfigurationIn(AwsModel):
    RoleARN: RoleArnStr
    BucketARN: BucketArnStr
    Prefix: PrefixStr | None = None
    ErrorOutputPrefix: PrefixStr | None = None
    BufferingHints: BufferingHintsIn | None = None
    CompressionFormat: Literal["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"] | None = None
    EncryptionConfiguration: dict[str, Any] | None = None
    CloudWatchLoggingOptions: dict[str, Any] | None = None
    ProcessingConfiguration: ProcessingConfigurationIn | None = None
    S3BackupMode: Literal["Disabled", "Enabled"] | None = None
    S3BackupConfiguration: dict[str, Any] | None = None
    DataFormatConversionConfiguration: DataFormatConversionConfigurationIn | None = None
    DynamicPartitioningConfiguration: DynamicPartitioningConfigurationIn | None = None
    FileExtension: Annotated[str, Field(max_length=128, pattern=r"^$|\.[0-9a-z!\-_.*'()]+$")] | None = None
    CustomTimeZone: Annotated[str, Field(max_length=50, pattern=r"^$|[a-zA-Z/_]+$")] | None = None


def invalid(message: str) -> AwsError:
    return AwsError("InvalidArgumentException", message)


# -- the mapping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirehoseDelivery:
    """A Firehose destination as tidelake runs it: the sink's config and the processing it needs."""

    config: DeliveryStreamConfig
    dataset: str
    #: The jq query of a MetadataExtraction processor, when one is configured.
    metadata_query: MetadataQuery | None = None
    #: The transform hook (`package.module:function`) a Lambda processor names.
    lambda_hook: str | None = None
    #: What tidelake did with settings it does not apply (shown in the docs, logged at create).
    notes: list[str] = field(default_factory=list)

    def handler(self) -> Handler | None:
        """The transform hook the sink runs (Lambda hook and/or jq), or None."""
        declared = {str(f["name"]): str(f["type"]) for f in self.config.fields}
        return processing_handler(self.metadata_query, declared, self.lambda_hook)


def sink_name(delivery_stream: str) -> str:
    """The sink's name for a Firehose stream name (`[a-zA-Z0-9_.-]{1,64}`): the name itself when it
    is a valid sink name (lower case), else a lower-cased one with a short hash, so that `Orders`
    and `orders` stay two streams."""
    if STREAM_NAME.match(delivery_stream):
        return delivery_stream
    stem = re.sub(r"[^a-z0-9._-]", "-", delivery_stream.lower()).lstrip("._-")[:54] or "stream"
    digest = hashlib.sha1(delivery_stream.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{stem}-{digest}"


def consumer_group(delivery_stream: str) -> str:
    return f"tidelake-firehose-{delivery_stream}"


#: A first folder of `Prefix` that names a dataset: a table name, or a topic-like name made one
#: (`raw-events` -> `raw_events`). It starts with a letter: never `_sinks`, `_errors`, `..` or `.hidden`.
_DATASET_FOLDER = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")


def split_prefix(prefix: str, delivery_stream: str) -> tuple[str, str]:
    """(dataset, layout below it) for a Firehose `Prefix`; see the module docstring.
    InvalidArgumentException for a first folder that cannot name a lake dataset."""
    first, slash, rest = prefix.partition("/")
    if first and "!{" not in first and slash:
        dataset = first if DATASET_NAME.match(first) else None
        if dataset is None and _DATASET_FOLDER.fullmatch(first):
            try:
                dataset = dataset_for_topic(first)
            except ValueError:
                dataset = None
        if dataset is None or dataset.startswith("_"):
            msg = (
                f"Prefix {prefix!r}: its first folder {first!r} names the dataset and must be a lake dataset "
                f"name ({DATASET_NAME.pattern}; letters, digits, '.', '-' are made one, as raw-events -> raw_events): "
                "it starts with a letter (no '_', '.', '..') and holds no other character"
            )
            raise invalid(msg)
        return dataset, rest
    return dataset_for_topic(delivery_stream), prefix


def error_layout(error_prefix: str) -> str:
    """The layout of error files below `_errors/<dataset>/`: always the error type first."""
    _, found, after = error_prefix.partition(ERROR_TYPE_EXPRESSION)
    after = after.lstrip("/") if found else ""
    return f"{ERROR_TYPE_EXPRESSION}/{after or DEFAULT_ERROR_LAYOUT}"


def firehose_delivery(
    delivery_stream: str,
    destination: ExtendedS3DestinationConfigurationIn,
    *,
    topic: str,
    lake: Path,
    auto_offset_reset: Literal["earliest", "latest"] = "earliest",
    tags: dict[str, str] | None = None,
    hook_modules: Sequence[str] = (),
) -> FirehoseDelivery:
    """The delivery stream that reads `topic` and does what `destination` asks; InvalidArgumentException
    (AwsError) for what tidelake does not do or a destination AWS would refuse too. `tags` are the
    stream's Tags: `tidelake:schema` declares the columns inline (`inline_schema`). A Lambda
    processor's hook must be in a module of `hook_modules` (the operator's setting
    `query.firehose_hook_modules`; a module or a package prefix), checked before it is imported."""
    notes: list[str] = []
    conversion = destination.DataFormatConversionConfiguration
    if conversion is None or conversion.Enabled is False:
        msg = (
            "tidelake delivers Parquet only: give DataFormatConversionConfiguration with an OpenXJsonSerDe "
            "or HiveJsonSerDe deserializer and a ParquetSerDe serializer (raw delivery is not supported)"
        )
        raise invalid(msg)
    compression = _parquet_compression(conversion)
    if destination.CompressionFormat not in (None, "UNCOMPRESSED"):
        msg = (
            f"CompressionFormat {destination.CompressionFormat} cannot be used with data format conversion: "
            "set it to UNCOMPRESSED and choose ParquetSerDe.Compression instead"
        )
        raise invalid(msg)
    _check_unsupported(destination, conversion, notes)
    hints = destination.BufferingHints or BufferingHintsIn()
    size_mb = hints.SizeInMBs if hints.SizeInMBs is not None else CONVERSION_DEFAULT_SIZE_MB
    if size_mb < CONVERSION_MIN_SIZE_MB:
        msg = (
            f"BufferingHints.SizeInMBs {size_mb} is too small: with data format conversion the "
            f"buffer size must be at least {CONVERSION_MIN_SIZE_MB} MiB"
        )
        raise invalid(msg)
    interval_s = hints.IntervalInSeconds if hints.IntervalInSeconds is not None else DEFAULT_INTERVAL_S

    processors = _processors(destination)
    query = _metadata_query(processors)
    lambda_hook = _lambda_hook(processors, hook_modules)
    dynamic = bool(
        destination.DynamicPartitioningConfiguration and destination.DynamicPartitioningConfiguration.Enabled
    )

    dataset, layout = split_prefix(destination.Prefix or "", delivery_stream)
    try:
        template = PrefixTemplate.parse(layout) if layout else None
    except ConfigError as exc:
        raise invalid(f"Prefix {destination.Prefix!r}: {exc}") from exc
    query_keys = template.query_fields if template else ()
    lambda_keys = template.lambda_keys if template else ()
    if (query_keys or lambda_keys) and not dynamic:
        msg = "Prefix uses partitionKeyFromQuery or partitionKeyFromLambda, which needs DynamicPartitioningConfiguration.Enabled = true"
        raise invalid(msg)
    if dynamic:
        if not (query_keys or lambda_keys):
            msg = "with dynamic partitioning enabled, Prefix must use !{partitionKeyFromQuery:...} or !{partitionKeyFromLambda:...}"
            raise invalid(msg)
        if not destination.ErrorOutputPrefix:
            raise invalid("with dynamic partitioning enabled, ErrorOutputPrefix is required")
    if query_keys and query is None:
        msg = "Prefix uses !{partitionKeyFromQuery:...}: add a MetadataExtraction processor with a MetadataExtractionQuery"
        raise invalid(msg)
    if lambda_keys and lambda_hook is None:
        msg = "Prefix uses !{partitionKeyFromLambda:...}: add a Lambda processor (LambdaArn = package.module:function)"
        raise invalid(msg)
    if query is not None and query.keys is not None:
        missing = [k for k in query_keys if k not in query.keys]
        if missing:
            msg = f"Prefix uses partitionKeyFromQuery keys {missing} that MetadataExtractionQuery {query.text!r} does not produce"
            raise invalid(msg)
    if not layout:
        layout = FIREHOSE_DEFAULT_PREFIX
    elif "!{timestamp:" not in layout and not dynamic:
        layout = layout + ("" if layout.endswith("/") else "/") + FIREHOSE_DEFAULT_PREFIX

    inline = (tags or {}).get(SCHEMA_TAG)
    schema = (
        inline_schema(inline) if inline is not None else _schema(conversion.SchemaConfiguration, lake, notes)
    )
    declared = {f["name"]: f["type"] for f in schema.get("fields", [])}
    if query is not None:
        layout = query.rewrite_prefix(layout, declared)
        if query.needs_jq(declared):
            notes.append("the MetadataExtractionQuery is evaluated by jq for every record")

    data: dict[str, Any] = {
        "name": sink_name(delivery_stream),
        "topics": [topic],
        "dataset": dataset,
        "time_field": None,
        "time_source": "arrival",
        "prefix": layout,
        "error_prefix": error_layout(destination.ErrorOutputPrefix or ""),
        "buffer": {"interval_s": interval_s, "size_mb": size_mb},
        "parquet": {"compression": compression},
        "group_id": consumer_group(delivery_stream),
        "auto_offset_reset": auto_offset_reset,
        **schema,
    }
    try:
        config = parse_config(data, f"of Firehose stream {delivery_stream}")
    except ConfigError as exc:
        raise invalid(str(exc)) from exc
    return FirehoseDelivery(config, dataset, query, lambda_hook, notes)


def _parquet_compression(conversion: DataFormatConversionConfigurationIn) -> str:
    output = conversion.OutputFormatConfiguration
    serializer = output.Serializer if output is not None else None
    if serializer is None or (serializer.ParquetSerDe is None and serializer.OrcSerDe is None):
        raise invalid(
            "DataFormatConversionConfiguration.OutputFormatConfiguration.Serializer is required (ParquetSerDe)"
        )
    if serializer.ParquetSerDe is not None and serializer.OrcSerDe is not None:
        raise invalid("give one Serializer: ParquetSerDe or OrcSerDe, not both")
    if serializer.OrcSerDe is not None:
        raise invalid("tidelake writes Parquet only: OrcSerDe is not supported; use ParquetSerDe")
    deserializer = (
        conversion.InputFormatConfiguration.Deserializer if conversion.InputFormatConfiguration else None
    )
    if deserializer is None or (deserializer.OpenXJsonSerDe is None and deserializer.HiveJsonSerDe is None):
        raise invalid(
            "DataFormatConversionConfiguration.InputFormatConfiguration.Deserializer is required (OpenXJsonSerDe or HiveJsonSerDe)"
        )
    if deserializer.OpenXJsonSerDe is not None and deserializer.HiveJsonSerDe is not None:
        raise invalid("give one Deserializer: OpenXJsonSerDe or HiveJsonSerDe, not both")
    return _PARQUET_COMPRESSION[serializer.ParquetSerDe.Compression or "SNAPPY"]  # type: ignore[union-attr]


def _check_unsupported(
    destination: ExtendedS3DestinationConfigurationIn,
    conversion: DataFormatConversionConfigurationIn,
    notes: list[str],
) -> None:
    if destination.S3BackupMode == "Enabled":
        raise invalid(
            "S3BackupMode Enabled is not supported by tidelake (the Kafka topic keeps the source records for 24 h)"
        )
    if destination.CustomTimeZone not in (None, "", "UTC"):
        raise invalid(
            f"CustomTimeZone {destination.CustomTimeZone!r}: tidelake evaluates !{{timestamp:...}} in UTC only"
        )
    if destination.FileExtension not in (None, "", ".parquet"):
        raise invalid(f"FileExtension {destination.FileExtension!r}: tidelake's files end in .parquet")
    deserializer = (
        conversion.InputFormatConfiguration.Deserializer if conversion.InputFormatConfiguration else None
    )
    openx = deserializer.OpenXJsonSerDe if deserializer else None
    if openx is not None and (openx.ColumnToJsonKeyMappings or openx.ConvertDotsInJsonKeysToUnderscores):
        raise invalid(
            "OpenXJsonSerDe ColumnToJsonKeyMappings and ConvertDotsInJsonKeysToUnderscores are not supported by tidelake: columns are the JSON keys"
        )
    hive = deserializer.HiveJsonSerDe if deserializer else None
    if hive is not None and hive.TimestampFormats:
        raise invalid(
            "HiveJsonSerDe TimestampFormats are not supported by tidelake: times are read as ISO-8601 text"
        )
    if destination.EncryptionConfiguration and destination.EncryptionConfiguration.get("KMSEncryptionConfig"):
        notes.append("KMSEncryptionConfig is ignored: the lake is not encrypted")


def _processors(destination: ExtendedS3DestinationConfigurationIn) -> list[ProcessorIn]:
    processing = destination.ProcessingConfiguration
    if processing is None or processing.Enabled is False:
        return []
    processors = processing.Processors or []
    for processor in processors:
        if processor.Type in ("RecordDeAggregation", "Decompression", "CloudWatchLogProcessing"):
            raise invalid(f"the {processor.Type} processor is not supported by tidelake")
    return processors


def _metadata_query(processors: list[ProcessorIn]) -> MetadataQuery | None:
    found = [p for p in processors if p.Type == "MetadataExtraction"]
    if not found:
        return None
    if len(found) > 1:
        raise invalid("give at most one MetadataExtraction processor")
    engine = found[0].parameter("JsonParsingEngine")
    if engine not in (None, "JQ-1.6"):
        raise invalid(f"JsonParsingEngine {engine!r}: use JQ-1.6")
    text = found[0].parameter("MetadataExtractionQuery")
    if text is None:
        raise invalid("the MetadataExtraction processor needs a MetadataExtractionQuery parameter")
    try:
        return parse_metadata_query(text)
    except ValueError as exc:
        raise invalid(f"MetadataExtractionQuery {text!r} is refused: {exc}") from exc


def _lambda_hook(processors: list[ProcessorIn], hook_modules: Sequence[str]) -> str | None:
    found = [p for p in processors if p.Type == "Lambda"]
    if not found:
        return None
    if len(found) > 1:
        raise invalid("give at most one Lambda processor")
    reference = found[0].parameter("LambdaArn")
    if reference is None:
        raise invalid("the Lambda processor needs a LambdaArn parameter")
    if reference.startswith("arn:") or ":" not in reference:
        msg = (
            f"LambdaArn {reference!r}: tidelake runs a Python transform hook in place of a Lambda function; "
            "give its import path as package.module:function"
        )
        raise invalid(msg)
    try:
        check_hook_module(reference, hook_modules)  # before anything is imported
    except ValueError as exc:
        raise invalid(f"LambdaArn {reference!r}: {exc}") from exc
    try:
        load_handler(reference)
    except ConfigError as exc:
        raise invalid(f"LambdaArn {reference!r}: {exc}") from exc
    return reference


def inline_schema(text: str) -> dict[str, Any]:
    """tidelake's extension: the Tag `tidelake:schema` = `order_id=string amount=int64 ...` declares
    the columns (a Tag value allows letters, digits, spaces and `_ . : / = + - @ %`, so types are
    written `string bool int32 int64 float32 float64 date32 timestamp`); every column is nullable."""
    fields = []
    for item in text.split():
        name, equals, kind = item.partition("=")
        if not equals or not name or kind not in TYPES or " " in kind:
            kinds = " ".join(t for t in TYPES if " " not in t)
            msg = f"Tag {SCHEMA_TAG} {text!r}: write columns as name=type separated by spaces, types {kinds}"
            raise invalid(msg)
        fields.append({"name": name, "type": kind, "nullable": True})
    if not fields:
        raise invalid(f"Tag {SCHEMA_TAG} declares no column")
    return {"fields": fields}


def _schema(config: SchemaConfigurationIn | None, lake: Path, notes: list[str]) -> dict[str, Any]:
    """`{"schema": "infer"}`, or `{"fields": [...]}` from the lake dataset `TableName`."""
    table = config.TableName if config is not None else None
    if table is None or not DATASET_NAME.match(table):
        return {"schema": "infer"}
    schema = dataset_columns(lake, table)
    if schema is None:
        notes.append(f"table {table!r} is not in the lake yet: columns are inferred")
        return {"schema": "infer"}
    fields = []
    for column in schema:
        name = type_name(column.type)
        if name not in _DECLARABLE:
            notes.append(f"table {table!r} has a {name} column ({column.name}): columns are inferred")
            return {"schema": "infer"}
        fields.append({"name": column.name, "type": name, "nullable": True})
    return {"fields": fields}


def dataset_columns(lake: Path, dataset: str) -> pa.Schema | None:
    """The columns of a lake dataset, from the footer of its newest Parquet file; None if it has none.
    Only a dataset folder that is a real directory of the lake (not a link) is read, and in it only
    regular files reached without following a link (checked with lstat, opened with O_NOFOLLOW)."""
    folder = lake / check_dataset_name(dataset)
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
    except OSError:
        return None
    files: list[tuple[float, Path]] = []
    for root, _dirs, names in os.walk(folder, followlinks=False):  # a link to a folder is not entered
        for name in names:
            path = Path(root, name)
            if not name.endswith(".parquet") or not is_visible_file(path):
                continue
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                files.append((info.st_mtime, path))
    if not files:
        return None
    newest = max(files, key=lambda item: item[0])[1]
    fd = os.open(newest, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return pq.read_schema(handle)
