"""Kafka helpers for stream-app integration tests: produce events, run a worker, read its rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_apps.spec import AppSpec, spec_from_mapping, spec_to_mapping

REPO = Path(__file__).resolve().parents[1]
#: The stream-app runtimes every stream test runs on, and the `tidelake stream run` flags that pick them.
RUNTIMES: dict[str, tuple[str, ...]] = {"aiokafka": (), "faust": ("--runtime", "faust")}


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]], key_field: str = "visitor_id",
            compression_type: str | None = None) -> None:  # fmt: skip
    """Send `events` in order, keyed by `key_field` (murmur2, as every tidelake producer), in
    batches compressed with `compression_type` (None: uncompressed; `tidelake replay` uses zstd)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, compression_type=compression_type)
    try:
        for event in events:
            key = event.get(key_field)
            producer.send(topic, json.dumps(event).encode(), key=None if key is None else str(key).encode())
        producer.flush(timeout=60)
    finally:
        producer.close()


def produce_raw(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for value in values:
            producer.send(topic, value, partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close()


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        raise TypeError(value)
    return json.dumps(value)


def write_spec(spec: AppSpec, path: Path) -> Path:
    """The spec as a TOML file a worker subprocess can load."""
    data = spec_to_mapping(spec)
    tables = {k: data.pop(k) for k in ("derive", "anomaly") if isinstance(data.get(k), dict)}
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items()]
    for name, table in tables.items():
        if table:
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def worker_process(spec_file: Path, bootstrap: str, state_dir: Path, tick_s: float = 0.2,
                   extra: tuple[str, ...] = (),
                   env_extra: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`tidelake stream run SPEC` in a subprocess; stopped (SIGTERM, then SIGKILL) on exit."""
    env = {
        "TIDELAKE_STREAM__TICK_S": str(tick_s),
        "TIDELAKE_STREAM__CHECKPOINT_INTERVAL_S": "0.2",
        **(env_extra or {}),
    }
    with stream_run(bootstrap, state_dir, str(spec_file), *extra, env=env) as process:
        yield process


@contextmanager
def stream_run(bootstrap: str, state_dir: Path, *args: str,
               env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`tidelake stream run ARGS -b BOOTSTRAP --state-dir DIR --json` in a subprocess, with `env`
    added to this process's environment; stopped (SIGTERM, then SIGKILL) on exit."""
    command = [sys.executable, "-m", "tidelake.cli", "stream", "run", *args, "-b", bootstrap,
               "--state-dir", str(state_dir), "--json"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        terminate(process, timeout_s=30)
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]


def terminate(process: subprocess.Popen[str], timeout_s: float) -> None:
    """SIGTERM a child still running and wait up to `timeout_s`, then SIGKILL it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class TopicReader:
    """Reads every committed message of a topic from the beginning, keeping all of them in order of
    arrival. Stream apps write in Kafka transactions: like the delivery streams, the reader sees only
    committed ones (`read_committed`), never the rows of a transaction a crash aborted."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",
        )
        partitions = None
        deadline = time.monotonic() + 90  # the app creates it when it starts: slow on a loaded machine
        while not partitions:
            partitions = self.consumer.partitions_for_topic(topic)
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} never appeared")
            if not partitions:
                time.sleep(0.2)
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self.consumer.seek_to_beginning()
        self.messages: list[Any] = []

    def poll(self) -> None:
        for records in self.consumer.poll(timeout_ms=200).values():
            self.messages.extend(records)

    def values(self) -> list[Any]:
        """Messages decoded from JSON (None for a value that is not JSON, e.g. on a DLQ)."""
        decoded = []
        for message in self.messages:
            try:
                decoded.append(json.loads(message.value))
            except ValueError:
                decoded.append(None)
        return decoded

    def wait_until(self, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float, what: str,
                   process: subprocess.Popen[str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            values = self.values()
            if done(values):
                return values
            if process is not None and process.poll() is not None:
                raise AssertionError(
                    f"worker exited ({process.returncode}) before {what}: {process.stderr.read()}"
                )  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {what}; have {len(values)} messages"
                )

    def close(self) -> None:
        self.consumer.close()


#: Every aggregate kind over the clickstream fields, for window tests on either runtime.
AGGS = [
    "count",
    "count_distinct:visitor_id",
    "sum:bytes",
    "min:status",
    "max:bytes",
    "avg:bytes",
    "top:3:page",
]


def make_spec(source: str, window: str, name: str, **extra: Any) -> AppSpec:
    """A per-page app over `source` with every aggregate, a 2 s idle timeout and output `<source>.out`."""
    data = {"name": name, "source": source, "window": window, "aggregates": AGGS, "key_field": "page",
            "idle_timeout": "2s", "sink_topic": f"{source}.out"}  # fmt: skip
    data.update(extra)
    return spec_from_mapping(data)


def stop_and_summary(worker: subprocess.Popen) -> dict[str, Any]:
    """SIGTERM a `tidelake stream run --json` worker and return its summary line."""
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.stderr.read()
    return json.loads(worker.stdout.read().strip().splitlines()[-1])
