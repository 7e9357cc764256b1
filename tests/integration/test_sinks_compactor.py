"""The background compactor merges closed partitions while a real delivery stream keeps adding
files to the open one: every row lands once, before and after, and the open hour is never merged."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path

import duckdb
import pytest
from kafka import KafkaProducer

from core.settings import load_settings
from sinks.compactor import BackgroundCompactor, ClosedRule, Round
from sinks.config import parse_config
from sinks.stream import DeliveryStream
from tests.integration.sinks_support import event, producer, unique_group, wait_until

pytestmark = pytest.mark.integration

MINUTES_APART = 0.3  # 200 events an hour
BATCH = 50  # events sent at a time; each batch is delivered (one flush, a file per Kafka partition) before the next
CLOSED_HOURS = ("00", "01")
EVENTS_BEFORE = 400  # hours 00 and 01
EVENTS_WHILE = 200  # hour 02, sent while the compactor runs
#: The compactor's clock: the small hours of the events' day, so that the open hour's folder, changed
#: by the stream now, is never quiet, and the closed hours' folders are set an hour before it.
CLOCK_S = dt.datetime(2019, 1, 22, 5, tzinfo=dt.UTC).timestamp()


def lake_rows(lake: Path, select: str = "count(*)") -> tuple:
    """`select` over the dataset's files as a reader lists them: never the compactor's hidden
    staging folder. A file swapped away between the listing and the read counts as no answer yet."""
    root = lake / "clickstream_events"
    files = [
        str(p)
        for p in root.rglob("*.parquet")
        if not any(x.startswith((".", "_")) for x in p.relative_to(root).parts)
    ]
    if not files:
        return (0,)
    try:
        with duckdb.connect() as con:
            return con.execute(
                f"SELECT {select} FROM read_parquet({files}, hive_partitioning = false)"
            ).fetchone()
    except duckdb.IOException:
        return (-1,)


def _hour(lake: Path, hour: str) -> Path:
    return lake / "clickstream_events" / "dt=2019-01-22" / f"hour={hour}"


def _deliver(out: KafkaProducer, topic: str, lake: Path, first: int, count: int) -> None:
    """Send events `first..first+count-1` in batches, each one in the lake before the next."""
    for start in range(first, first + count, BATCH):
        for i in range(start, start + BATCH):
            out.send(
                topic,
                key=str(i % 97).encode(),
                value=json.dumps(event(i, minutes_apart=MINUTES_APART)).encode(),
            )
        out.flush(timeout=60)
        wait_until(
            lambda end=start + BATCH: lake_rows(lake)[0] == end,
            60,
            f"events up to {start + BATCH} never reached the lake",
            poll_s=0.05,
        )


def test_closed_hours_are_merged_while_a_stream_writes_the_open_one(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    lake = tmp_path / "lake"
    config = parse_config(
        {
            "name": "compactor-test",
            "topics": [topic],
            "dataset": "clickstream_events",
            "schema": "clickstream",
            "group_id": unique_group(),
            "buffer": {"interval_s": 0.1, "records": 100_000},
        },
        "test",
    )
    stream = DeliveryStream(
        config, load_settings(kafka={"bootstrap_servers": kafka_bootstrap}, lake={"root": lake})
    )
    stop = threading.Event()
    runner = threading.Thread(target=stream.run, kwargs={"stop_event": stop}, daemon=True)
    runner.start()
    rounds: list[Round] = []
    compactor = BackgroundCompactor(
        lake,
        ["clickstream_events"],
        interval_s=0.05,
        rule=ClosedRule(lateness_s=900, quiet_s=120),
        clock=lambda: CLOCK_S,
        on_round=rounds.append,
    )
    try:
        with producer(kafka_bootstrap) as out:
            _deliver(out, topic, lake, 0, EVENTS_BEFORE)
            files_before = {h: len(list(_hour(lake, h).iterdir())) for h in CLOSED_HOURS}
            assert min(files_before.values()) >= 4  # several flushes each: small files to merge
            for hour in CLOSED_HOURS:
                os.utime(_hour(lake, hour), (CLOCK_S - 3600, CLOCK_S - 3600))
            with compactor:
                _deliver(out, topic, lake, EVENTS_BEFORE, EVENTS_WHILE)
                wait_until(lambda: compactor.rounds >= 2, 30, "the compactor ran fewer than two rounds")
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert compactor.error is None
    compacted = [(d, c.partition, c.files_before, c.files_after) for r in rounds for d, c in r.compacted]
    assert compacted == [
        ("clickstream_events", f"dt=2019-01-22/hour={h}", files_before[h], 1) for h in CLOSED_HOURS
    ]
    # every file the stream wrote while the compactor ran is still there: the open hour was never merged
    assert len(list(_hour(lake, "02").iterdir())) == stream.summary.files - sum(files_before.values())
    total = EVENTS_BEFORE + EVENTS_WHILE
    assert lake_rows(lake, "count(*), count(DISTINCT event_id)") == (total, total)
    by_hour = lake_rows(
        lake,
        "count(*) FILTER (WHERE hour(event_time) = 0), count(*) FILTER (WHERE hour(event_time) = 1)",
    )
    assert by_hour == (200, 200)
    assert not list((lake / "_sinks").rglob("*.json"))
