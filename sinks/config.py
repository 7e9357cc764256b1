"""Delivery-stream configs: what a stream reads, where it writes, how it buffers and converts.

A config is a TOML file (the shipped ones are in `sinks/configs/`, run by name):

    name = "clickstream-events"
    topics = ["clickstream.events"]          # or topic_pattern = "^analytics\\..*"
    dataset = "clickstream_events"           # default: from the topic (analytics.page-views-1m -> page_views_1m)
    schema = "clickstream"                   # or "late-events", "infer", or [[fields]] name/type/nullable
    time_field = "event_time"                # event time for !{timestamp:...}
    time_source = "event"                    # or "arrival" (the Kafka record timestamp, as Firehose does)
    prefix = "dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"
    [buffer]   interval_s, size_mb, records, max_open_partitions
    [parquet]  engine = "pyarrow"|"fastparquet", compression = "snappy"|"zstd"|"gzip"|"none", row_group_records

`mode = "errors"` makes a stream for dead-letter topics: every record goes to the error output, its
error type, message and source taken from its dead-letter headers (core/dead_letters.py).
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from core.lake import DEFAULT_PREFIX, check_dataset_name, dataset_for_topic
from core.toml_files import read_toml
from core.topics import DLQ_SUFFIX
from sinks.buffering import BufferPolicy
from sinks.prefixes import PrefixTemplate
from sinks.schemas import BUILTIN_SCHEMAS, ERROR_OUTPUT, DatasetSchema
from sinks.writer import COMPRESSIONS, ENGINES

#: Like Firehose's default error prefix, with the error type first so `_errors/<dataset>/<type>/` holds.
DEFAULT_ERROR_PREFIX = "!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
#: Firehose's own default layout, for users who want to see the AWS keys (arrival time, no Hive names).
FIREHOSE_DEFAULT_PREFIX = "!{timestamp:yyyy/MM/dd/HH}/"
STREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CONFIG_PACKAGE = "sinks.configs"


class ParquetOptions(BaseModel):
    """Like Firehose's ParquetSerDe: compression and block size (here: rows per row group)."""

    engine: str = "pyarrow"
    compression: str = "snappy"
    row_group_records: int = Field(default=128 * 1024, ge=1)

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in ENGINES:
            msg = f"engine {value!r}: use one of {', '.join(ENGINES)}"
            raise ValueError(msg)
        return value

    @field_validator("compression")
    @classmethod
    def _compression(cls, value: str) -> str:
        value = value.lower()
        if value not in COMPRESSIONS:
            msg = f"compression {value!r}: use one of {', '.join(COMPRESSIONS)}"
            raise ValueError(msg)
        return value


class DeliveryStreamConfig(BaseModel):
    """One delivery stream (a Firehose delivery stream reading Kafka topics into one lake dataset)."""

    name: str
    topics: list[str] = Field(default_factory=list)
    topic_pattern: str | None = None
    dataset: str | None = None
    mode: Literal["records", "errors"] = "records"
    schema_: str = Field(default="infer", alias="schema")
    fields: list[dict[str, Any]] = Field(default_factory=list)
    time_field: str | None = "event_time"
    time_source: Literal["event", "arrival"] = "event"
    prefix: str = DEFAULT_PREFIX
    error_prefix: str = DEFAULT_ERROR_PREFIX
    buffer: BufferPolicy = Field(default_factory=BufferPolicy)
    parquet: ParquetOptions = Field(default_factory=ParquetOptions)
    transform: str | None = None
    group_id: str | None = None
    #: Kafka static membership (group.instance.id): a restarted sink takes its partitions back at
    #: once instead of waiting for the session of the killed one to expire. One id per running copy.
    instance_id: str | None = None
    session_timeout_ms: int = Field(default=30_000, ge=6_000, le=300_000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"

    model_config = {"populate_by_name": True, "extra": "forbid"}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not STREAM_NAME.match(value):
            msg = f"name {value!r} must match {STREAM_NAME.pattern}"
            raise ValueError(msg)
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str | None) -> str | None:
        return None if value is None else check_dataset_name(value)

    @model_validator(mode="after")
    def _check(self) -> DeliveryStreamConfig:
        if bool(self.topics) == bool(self.topic_pattern):
            msg = "give either topics = [...] or topic_pattern = '...', not both and not neither"
            raise ValueError(msg)
        if self.topic_pattern:
            try:
                re.compile(self.topic_pattern)
            except re.error as exc:
                msg = f"topic_pattern {self.topic_pattern!r} is not a regular expression: {exc}"
                raise ValueError(msg) from exc
        if self.fields and self.schema_ not in ("declared", "infer"):
            msg = "give schema = 'clickstream' | 'infer' or [[fields]], not both"
            raise ValueError(msg)
        if not self.fields and self.schema_ not in BUILTIN_SCHEMAS:
            msg = f"schema {self.schema_!r}: use one of {', '.join(BUILTIN_SCHEMAS)} or declare [[fields]]"
            raise ValueError(msg)
        if self.mode == "errors":
            # dead letters are not converted: every record becomes an error row (sinks.error_records)
            if "schema_" not in self.model_fields_set:
                self.schema_ = ERROR_OUTPUT
            if self.schema_ != ERROR_OUTPUT or self.fields:
                msg = f"mode = 'errors' writes the error output's columns: give schema = '{ERROR_OUTPUT}' or none"
                raise ValueError(msg)
        elif self.schema_ == ERROR_OUTPUT:
            msg = f"schema '{ERROR_OUTPUT}' is for mode = 'errors' (dead-letter topics)"
            raise ValueError(msg)
        if self.time_source == "event" and not self.time_field and "!{timestamp:" in self.prefix:
            msg = "the prefix uses !{timestamp:...} by event time, so time_field is needed (or time_source = 'arrival')"
            raise ValueError(msg)
        return self

    # -- derived -------------------------------------------------------------------------------

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"tidelake-sink-{self.name}"

    def dataset_of(self, topic: str) -> str:
        """The dataset a topic's records go to (a DLQ topic's records: the dataset of its source)."""
        if self.dataset:
            return self.dataset
        return dataset_for_topic(topic.removesuffix(DLQ_SUFFIX) if self.mode == "errors" else topic)

    def new_schema(self) -> DatasetSchema:
        """A fresh schema for one dataset (inferred schemas grow per dataset, so each gets its own)."""
        if self.fields:
            schema = DatasetSchema.from_declared(self.fields)
            schema.name = f"{self.name} declared"
            return schema
        return DatasetSchema.builtin(self.schema_)

    def templates(self) -> tuple[PrefixTemplate, PrefixTemplate]:
        return PrefixTemplate.parse(self.prefix), PrefixTemplate.parse(self.error_prefix, error_prefix=True)


def parse_config(data: dict[str, Any], where: str) -> DeliveryStreamConfig:
    """A validated config; ConfigError names the file and every wrong field."""
    try:
        config = DeliveryStreamConfig.model_validate(data)
        config.templates()
        config.new_schema()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"bad delivery-stream config {where}: {problems}"
        raise ConfigError(msg) from exc
    except ConfigError as exc:
        msg = f"bad delivery-stream config {where}: {exc}"
        raise ConfigError(msg) from exc
    return config


def load_config_file(path: Path) -> DeliveryStreamConfig:
    hint = f"give an existing .toml file or a shipped name ({', '.join(shipped_names())})"
    return parse_config(read_toml(path, "delivery-stream config", hint), str(path))


def shipped_names() -> list[str]:
    """The delivery streams shipped with tidelake (`sinks/configs/*.toml`)."""
    folder = resources.files(CONFIG_PACKAGE)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_shipped(name: str) -> DeliveryStreamConfig:
    resource = resources.files(CONFIG_PACKAGE) / f"{name}.toml"
    if not resource.is_file():
        msg = f"no shipped delivery stream named {name!r}; choose one of {', '.join(shipped_names())} or give --config FILE"
        raise ConfigError(msg)
    return parse_config(tomllib.loads(resource.read_text()), f"sinks/configs/{name}.toml")
