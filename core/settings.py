"""Settings for every tidelake process, from defaults, environment variables and CLI flags.

Each field has an environment variable `TIDELAKE_<SECTION>__<FIELD>`, e.g.
`TIDELAKE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092` or `TIDELAKE_LAKE__ROOT=/data/lake`.
Flags given on the command line win over the environment, which wins over the defaults.

Settings are built once, in the entry point (`load_settings`), and passed down: nothing here
reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

ENV_PREFIX = "TIDELAKE_"
ENV_NESTED_DELIMITER = "__"

#: The Apache Kafka release that `tidelake broker` runs and docker-compose.yml pins.
KAFKA_VERSION = "4.1.2"


def _xdg_dir(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable) or str(Path.home() / fallback)
    return Path(base) / "tidelake"


def default_data_home() -> Path:
    """Where tidelake keeps state that outlives a run (the local broker's data)."""
    return _xdg_dir("XDG_DATA_HOME", ".local/share")


def default_cache_home() -> Path:
    """Where tidelake keeps what it can fetch again (Kafka's jars)."""
    return _xdg_dir("XDG_CACHE_HOME", ".cache")


class KafkaSettings(BaseModel):
    """How clients reach Kafka (the stand-in for a Kinesis data stream endpoint)."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", min_length=1, description="host:port[,host:port...] of the Kafka cluster"
    )
    client_id: str = Field(default="tidelake", min_length=1)
    request_timeout_ms: int = Field(default=30_000, gt=0)


class BrokerSettings(BaseModel):
    """The local single-node Kafka that `tidelake broker` runs from Kafka's Maven Central jars."""

    port: int = Field(default=9092, ge=1, le=65535, description="PLAINTEXT port on 127.0.0.1")
    controller_port: int | None = Field(
        default=None, ge=1, le=65535, description="KRaft controller port; default: port + 1"
    )
    data_dir: Path = Field(default_factory=lambda: default_data_home() / "broker")
    jars_dir: Path | None = Field(
        default=None, description="folder of Kafka jars; default: fetched by Maven into the user cache"
    )
    kafka_version: str = KAFKA_VERSION
    heap: str = Field(default="1g", pattern=r"^\d+[mMgG]$", description="JVM -Xmx for the broker")
    start_timeout_s: float = Field(default=90.0, gt=0)

    def resolved_controller_port(self) -> int:
        return self.controller_port or self.port + 1


class LakeSettings(BaseModel):
    """The lake: a folder of Hive-partitioned Parquet (the stand-in for an S3 bucket)."""

    root: Path = Field(default=Path("lake"), description="folder that holds one sub-folder per dataset")


class ProducerSettings(BaseModel):
    """How replay, generate and the agent write to Kafka (like a Kinesis producer library's config)."""

    partitions: int = Field(default=4, ge=1, description="partitions (shards) of a topic a producer creates")
    linger_ms: int = Field(default=20, ge=0, description="wait this long to fill a batch")
    batch_bytes: int = Field(default=1_000_000, ge=1024, description="records per partition batch, in bytes")
    # zstd: aiokafka compresses lz4 at level 9 (~130 MB/s here), zstd level 3 at ~700 MB/s, smaller.
    compression: str = Field(default="zstd", pattern=r"^(none|gzip|snappy|lz4|zstd)$")
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="bigger records go to the DLQ (Kafka's default message.max.bytes)",
    )
    delivery_timeout_ms: int = Field(
        default=120_000,
        gt=0,
        description=(
            "how long a batch may wait for its partition's leader, e.g. through a broker restart, "
            "before the send fails (Kafka's delivery.timeout.ms)"
        ),
    )


class RuntimeSettings(BaseModel):
    """Where long-running tidelake processes publish what they are doing, for `tidelake status`."""

    state_dir: Path = Field(default_factory=lambda: default_data_home() / "run")


class QuerySettings(BaseModel):
    """The Athena stand-in: DuckDB limits, the HTTP API and where query results are kept."""

    timeout_s: float = Field(default=60.0, gt=0, description="a query running longer is interrupted")
    memory_limit: str = Field(
        default="2GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$", description="DuckDB memory_limit"
    )
    threads: int = Field(default=2, ge=1, description="DuckDB worker threads")
    max_result_rows: int = Field(
        default=1_000_000, ge=1, description="rows kept per result; more is an error"
    )
    max_result_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1, description="Arrow bytes of one result; more is an error"
    )
    max_spill: str = Field(
        default="8GB",
        pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$",
        description="DuckDB max_temp_directory_size: what one query may spill to disk beyond memory_limit",
    )
    max_cached_result_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="results the API keeps in memory; older ones are read from CSV",
    )
    concurrency: int = Field(default=2, ge=1, description="queries that run at once in the API; others queue")
    results_dir: Path | None = Field(
        default=None, description="<id>.csv results; default: <runtime.state_dir>/query-results"
    )
    host: str = Field(default="127.0.0.1", description="`tidelake serve` binds here")
    port: int = Field(default=8080, ge=1, le=65535)
    api_token: str | None = Field(
        default=None, description="if set, the API wants `Authorization: Bearer <token>`"
    )
    shard_quotas: bool = Field(
        default=False,
        description="`tidelake serve` enforces Kinesis Data Streams' per-shard quotas (producers.kinesis_quotas)",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names `tidelake serve` answers besides 127.0.0.1, localhost, [::1] and its --host",
    )
    firehose_hook_modules: list[str] = Field(
        default_factory=list,
        description="modules (or package prefixes) whose transform hooks a Firehose CreateDeliveryStream "
        "may name as LambdaArn; empty: no Lambda processor through the API",
    )


class StreamSettings(BaseModel):
    """Stream apps (the Kinesis Data Analytics stand-in): where their window state lives, timer tick."""

    state_dir: Path = Field(
        default_factory=lambda: default_data_home() / "stream", description="one folder per app"
    )
    tick_s: float = Field(default=1.0, gt=0, description="timer tick: idle close and polling granularity")
    checkpoint_interval_s: float = Field(
        default=1.0, gt=0, description="snapshot at least this often while busy"
    )


class Settings(BaseSettings):
    """All of tidelake's settings; one section per concern."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="ignore",
        validate_default=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)

    def query_results_dir(self) -> Path:
        """Where `tidelake serve` keeps `<id>.csv` results: `query.results_dir`, else
        `<runtime.state_dir>/query-results` (runtime state, never the checkout or the lake)."""
        return self.query.results_dir or self.runtime.state_dir / "query-results"


def env_var_name(location: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at `location`, e.g. ('kafka', 'client_id')."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in location)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings: defaults < environment < `overrides` (nested dicts, from CLI flags).

    Raises `ConfigError` whose one-line message names the variable to fix.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = tuple(error["loc"])
            value = os.environ.get(env_var_name(location))
            where = f"{env_var_name(location)}={value!r}" if value is not None else env_var_name(location)
            problems.append(f"{where}: {error['msg']}")
        msg = "bad setting: " + "; ".join(problems) + " (fix the environment variable or the matching flag)"
        raise ConfigError(msg) from exc
