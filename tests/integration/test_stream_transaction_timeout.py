"""A checkpoint whose transaction outlives Kafka's transaction timeout (a broker restart under load
stalls one that long) is aborted by the coordinator, and the producer then gets ProducerFenced, the
same error as when another worker takes the transactional id over. The worker must tell the two
apart: after an abort it restarts from its last committed snapshot, with every final row once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from stream_apps.worker import StreamWorker, WorkerOptions, transactional_id
from tests.stream_events import clickstream
from tests.stream_kafka import TopicReader, make_spec, produce
from tests.stream_oracle import expected_rows, row_sort_key

#: Short, so the coordinator aborts the stalled transaction soon (its check runs every 10 s).
TIMEOUT_MS = 1_000


class StallingWorker(StreamWorker):
    """Its first checkpoint with rows stalls after sending them, until Kafka has aborted the
    transaction (the event loop is blocked, as a stalled broker connection holds a checkpoint)."""

    stalled_on: str | None = None

    def _reached(self, point: str) -> None:
        if point == "after-send" and self.stalled_on is None:
            self.stalled_on = transactional_id(self.spec, self.engine.partitions)  # type: ignore[union-attr]
            wait_until_aborted(self.options.bootstrap_servers, self.stalled_on, timeout_s=90)


def wait_until_aborted(bootstrap: str, transactional: str, timeout_s: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        state = "unknown"
        while time.monotonic() < deadline:
            state = str(admin.describe_transactions([transactional])[transactional].state)
            if "ONGOING" not in state.upper():
                return
            time.sleep(0.2)
        raise AssertionError(f"Kafka never aborted {transactional}; its state stayed {state}")
    finally:
        admin.close()


def test_checkpoint_aborted_for_its_timeout_restarts_from_the_snapshot_with_every_row_once(
    kafka_bootstrap, make_topic, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", "transaction-timeout")
    events = clickstream(1500, seed=31)
    expected = expected_rows(events, spec)
    produce(kafka_bootstrap, source, events)
    options = WorkerOptions(
        bootstrap_servers=kafka_bootstrap, state_dir=tmp_path / "state", tick_s=0.2,
        checkpoint_interval_s=0.2, transaction_timeout_ms=TIMEOUT_MS,
    )  # fmt: skip
    worker = StallingWorker(spec, options)
    loop = asyncio.new_event_loop()
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(loop.run_until_complete(worker.run()))
        except BaseException as exc:  # the test reports it below
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="stream_apps.worker"):
        thread.start()
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        deadline = time.monotonic() + 180
        while len(reader.values()) < len(expected) and thread.is_alive():
            assert time.monotonic() < deadline, f"{len(reader.values())} of {len(expected)} rows after 180 s"
            reader.poll()
        loop.call_soon_threadsafe(worker.stop)
        thread.join(timeout=60)
    reader.poll()
    rows = reader.values()
    reader.close()
    loop.close()

    assert not thread.is_alive()
    assert not isinstance(outcome[0], BaseException), f"the worker stopped with {outcome[0]!r}"
    assert worker.stalled_on == transactional_id(spec, [0, 1, 2, 3])
    retries = [r.getMessage() for r in caplog.records if "past the transaction timeout" in r.getMessage()]
    assert len(retries) == 1, [r.getMessage() for r in caplog.records]
    assert sorted(rows, key=row_sort_key) == expected  # the aborted rows were sent again, once
