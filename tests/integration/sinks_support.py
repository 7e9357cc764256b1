"""Helpers for the sinks' integration tests: clickstream events, a producer, bounded waits, lake counts."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
from kafka import KafkaProducer

from core.events import ClickstreamEvent

BASE_TIME = dt.datetime(2019, 1, 22, 0, 0, tzinfo=dt.UTC)


def event(i: int, *, minutes_apart: float = 0.05, run: str = "") -> dict[str, object]:
    """A clickstream event as published on the wire (JSON dict), unique by `i` within a `run`."""
    return ClickstreamEvent(
        event_id=f"{run}e{i:07d}",
        event_time=BASE_TIME + dt.timedelta(minutes=i * minutes_apart),
        visitor_id=f"v{i % 97}",
        method="GET",
        url=f"/product/{i % 13}?ref=x",
        page=f"/product/{i % 13}",
        referrer=None,
        status=200 if i % 10 else 404,
        bytes=1000 + i,
        user_agent="Mozilla/5.0",
        is_bot=i % 17 == 0,
        source="sinks-test",
    ).to_json_dict()


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)


def produce(
    bootstrap: str, topic: str, values: Iterable[bytes | dict], key: Callable[[int], bytes] | None = None
) -> int:
    """Send every value (dicts as JSON) and wait for the broker's acks; the number sent."""
    sent = 0
    with producer(bootstrap) as out:
        for i, value in enumerate(values):
            payload = json.dumps(value).encode() if isinstance(value, dict) else value
            out.send(topic, key=key(i) if key else str(i % 97).encode(), value=payload)
            sent += 1
        out.flush(timeout=60)
    return sent


def wait_until(condition: Callable[[], bool], timeout_s: float, message: str, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll_s)
    raise AssertionError(f"{message} (waited {timeout_s} s)")


def lake_rows(lake: Path, dataset: str, select: str = "count(*)") -> tuple:
    files = [p for p in (lake / dataset).rglob("*.parquet") if not p.name.startswith((".", "_"))]
    if not files:
        return (0,) * (select.count(",") + 1)
    glob = str(lake / dataset / "**" / "*.parquet")
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT {select} FROM read_parquet('{glob}', hive_partitioning = false)"
        ).fetchone()


def error_rows(lake: Path, dataset: str) -> list[tuple]:
    folder = lake / "_errors" / dataset
    if not any(folder.rglob("*.parquet")):
        return []
    glob = str(folder / "**" / "*.parquet")
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT error_type, kafka_partition, kafka_offset, raw_data, raw_encoding, error_message "
            f"FROM read_parquet('{glob}') ORDER BY kafka_partition, kafka_offset"
        ).fetchall()


def unique_group() -> str:
    return f"test-sink-{uuid.uuid4().hex[:10]}"


def write_clickstream_config(path: Path, name: str, topic: str, more: str = "") -> Path:
    """A delivery-stream TOML for `topic` into clickstream_events, in a group of its own; `more`
    adds lines (top-level keys first, then [sections])."""
    path.write_text(
        f'name = "{name}"\ntopics = ["{topic}"]\ndataset = "clickstream_events"\nschema = "clickstream"\n'
        f'group_id = "{unique_group()}"\n{more}'
    )
    return path


def sink_command(config: Path, lake: Path, bootstrap: str, *extra: str) -> list[str]:
    """`tidelake sink run --config CONFIG --lake LAKE -b BOOTSTRAP --json EXTRA...` as a subprocess argv."""
    return [sys.executable, "-m", "tidelake.cli", "sink", "run", "--config", str(config), "--lake", str(lake),
            "-b", bootstrap, "--json", *extra]  # fmt: skip
