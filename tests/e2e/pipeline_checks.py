"""What the end-to-end tests reconcile: the lake against the source file, computed independently."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition

from core.events import format_event_time
from core.lake import dataset_for_topic
from core.topics import CLICKSTREAM_EVENTS
from producers.parsing import parse_file
from stream_apps.catalog import shipped_specs
from tests.stream_oracle import expected_rows, row_sort_key

REPO = Path(__file__).resolve().parents[2]
ZANBIL = REPO / "data" / "zanbil-access-10k" / "access-10k.log"


def sample_events(path: Path = ZANBIL) -> list[dict[str, Any]]:
    """The events replay publishes for one pass over the file."""
    return [record.payload() for record in parse_file(path).records]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_event_time(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_dataset(folder: Path, sql: str) -> pa.Table | None:
    """`sql` with `{files}` replaced by the list of the dataset folder's Parquet files, as a
    materialised relation; None when it has none. The stack's compactor may swap a partition's
    files for their merge between the listing and the read (atomically: never both, never
    neither), so a file gone missing means list again."""
    for attempt in range(5):
        files = sorted(str(p) for p in folder.rglob("*.parquet") if not p.name.startswith("."))
        if not files:
            return None
        try:
            return duckdb.sql(sql.format(files=files)).to_arrow_table()
        except duckdb.IOException:
            if attempt == 4:
                raise
    return None


def lake_rows(lake: Path, dataset: str) -> list[dict[str, Any]]:
    """Every row of a dataset as the stream app emitted it (partition columns dropped)."""
    rows = read_dataset(
        lake / dataset, "SELECT * EXCLUDE (dt, hour) FROM read_parquet({files}, hive_partitioning = true)"
    )
    if rows is None:
        return []
    return [
        {k: _plain(v) for k, v in row.items() if v is not None or k != "anomaly_score"}
        for row in rows.to_pylist()
    ]


def app_mismatches(lake: Path, events: list[dict[str, Any]]) -> dict[str, str]:
    """For each shipped app, how its lake dataset differs from DuckDB's GROUP BY of the events."""
    problems = {}
    for name, spec in sorted(shipped_specs().items()):
        expected = expected_rows(events, spec)
        got = lake_rows(lake, dataset_for_topic(spec.sink_topic))
        if spec.anomaly:
            for row in got:
                row.pop("anomaly_score", None)
        got = sorted(got, key=row_sort_key)
        if got != expected:
            extra = [r for r in got if r not in expected][:2]
            missing = [r for r in expected if r not in got][:2]
            problems[name] = f"{len(got)} rows vs {len(expected)} expected; extra {extra}; missing {missing}"
    return problems


def topic_events(bootstrap: str, expected: int, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every event clickstream.events holds (read committed), in partition order; fails unless
    `expected` arrive within `timeout_s`."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    events: list[dict[str, Any]] = []
    try:
        tps = [
            TopicPartition(CLICKSTREAM_EVENTS, p)
            for p in sorted(consumer.partitions_for_topic(CLICKSTREAM_EVENTS) or ())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while len(events) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                events.extend(orjson.loads(r.value) for r in records)
    finally:
        consumer.close()
    assert len(events) == expected, (
        f"read {len(events)} of {expected} records of {CLICKSTREAM_EVENTS} in {timeout_s:g} s"
    )
    return events


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs of processes whose environment has name=value (how the demo's children are recognised)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
