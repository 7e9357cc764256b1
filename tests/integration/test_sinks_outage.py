"""A delivery stream rides out a broker crash (kill -9, then a restart) and a group that never
assigns partitions: every event in the lake once, and no busy loop while it waits."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from core.admin import create_topics
from core.settings import load_settings
from core.status_board import RETRYING, RUNNING
from core.topics import TopicSpec
from sinks.config import parse_config
from sinks.metrics import WAITING_FOR_PARTITIONS, SinkSummary
from sinks.stream import DeliveryStream
from tests.integration.sinks_support import (
    event,
    lake_rows,
    produce,
    sink_command,
    unique_group,
    wait_until,
    write_clickstream_config,
)
from tidelake.broker import LocalBroker

pytestmark = pytest.mark.integration


def _stream(
    bootstrap: str, lake: Path, topic: str, interval_s: float, states: list[str], *, pattern: bool = False
) -> DeliveryStream:
    config = parse_config(
        {
            "name": "outage-events",
            ("topic_pattern" if pattern else "topics"): topic if pattern else [topic],
            "dataset": "clickstream_events",
            "schema": "clickstream",
            "group_id": unique_group(),
            "buffer": {"interval_s": interval_s, "records": 100_000},
        },
        "test",
    )
    settings = load_settings(kafka={"bootstrap_servers": bootstrap}, lake={"root": lake})

    def progress(summary: SinkSummary) -> None:
        if not states or states[-1] != summary.state:
            states.append(summary.state)

    return DeliveryStream(config, settings, on_progress=progress)


def _board(path: Path) -> dict:
    """The sink's status board entry (its metrics), or {} before its first publish."""
    try:
        return json.loads(path.read_text())["metrics"]
    except (OSError, ValueError, KeyError):
        return {}


def test_a_broker_crash_during_a_flush_is_ridden_out_and_every_event_lands_once(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    """`tidelake sink run` as a user runs it (a process of its own: kafka-python's sockets to the
    crashed broker end with it), watched through its status board entry."""
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    topic = "outage.events"
    create_topics(bootstrap, [TopicSpec(topic, 2)])
    lake = tmp_path / "lake"
    config = write_clickstream_config(
        tmp_path / "outage.toml", "outage-events", topic, "[buffer]\ninterval_s = 6\nrecords = 100000\n"
    )
    board = tmp_path / "run" / "sink.outage-events.json"
    env = {**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "run")}
    command = sink_command(config, lake, bootstrap, "--max-outage", "120")
    with (tmp_path / "sink.err").open("w") as err:
        sink = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    try:
        produce(bootstrap, topic, (event(i) for i in range(2_000)))
        wait_until(lambda: lake_rows(lake, "clickstream_events") == (2_000,), 90, "the first 2,000 events")
        # read but not yet flushed: the flush (and its commit) falls inside the outage
        produce(bootstrap, topic, (event(i) for i in range(2_000, 4_000)))
        wait_until(lambda: _board(board).get("records_in") == 4_000, 60, "the sink reading the next 2,000")
        assert _board(board)["rows_written"] == 2_000
        own_broker.kill()
        wait_until(lambda: _board(board).get("state") == RETRYING, 60, "the sink retrying its commit")
        assert sink.poll() is None, (tmp_path / "sink.err").read_text()[-2000:]
        own_broker.start()
        wait_until(lambda: _board(board).get("state") == RUNNING, 120, "the commit after the restart")
        produce(bootstrap, topic, (event(i) for i in range(4_000, 5_000)))
        wait_until(lambda: lake_rows(lake, "clickstream_events") == (5_000,), 120, "all 5,000 events")
    finally:
        sink.send_signal(signal.SIGTERM)  # flush what is buffered, commit, print the summary
        out, _ = sink.communicate(timeout=120)
    assert sink.returncode == 0, (tmp_path / "sink.err").read_text()[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (5_000, 5_000)
    # 7,000 read when the group rebalanced before the retried commit went through (a slow restart on
    # a busy machine): the 2,000 records read during the outage are read and written again, into
    # files of the same names, so the lake holds each event once (above) and the counts reconcile
    assert summary["records_in"] in (5_000, 7_000)
    assert (summary["rows_written"], summary["errors"]) == (summary["records_in"], 0)
    assert summary["reconciles"] is True


def test_a_sink_without_partitions_waits_quietly_and_max_idle_counts_from_the_start(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A pattern no topic matches: the group has nothing to assign. The sink must show that it waits
    for partitions, use next to no CPU, and stop after --max-idle like any idle sink."""
    states: list[str] = []
    pattern = rf"^absent\.{unique_group()}$"
    stream = _stream(kafka_bootstrap, tmp_path / "lake", pattern, 1.0, states, pattern=True)
    began = time.monotonic()
    result: dict[str, object] = {}

    def run() -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD)
        result["summary"] = stream.run(max_idle_s=4)
        after = resource.getrusage(resource.RUSAGE_THREAD)
        result["cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    elapsed_s = time.monotonic() - began
    assert not worker.is_alive(), "the sink without partitions did not stop after --max-idle 4"
    summary = result["summary"]
    assert isinstance(summary, SinkSummary)
    assert (summary.records_in, summary.partitions, summary.state) == (0, 0, WAITING_FOR_PARTITIONS)
    assert states[0] == WAITING_FOR_PARTITIONS
    assert 4 <= elapsed_s < 30
    # a busy loop burns about as much CPU as time passes; waiting quietly uses a small share of it
    assert result["cpu_s"] < 0.25 * elapsed_s, f"{result['cpu_s']:.2f} s of CPU in {elapsed_s:.1f} s"


def test_a_sink_started_right_after_its_topic_was_made_gets_its_partitions(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    """kafka-python's group leader could join before its metadata snapshot held the new topic, then
    assign no partitions for good, or rebalance again at once and stall (3 starts in 11 before the
    fix); each start here must deliver."""
    for attempt in range(6):
        topic = make_topic(partitions=4)
        produce(kafka_bootstrap, topic, (event(i, run=f"a{attempt}") for i in range(300)))
        states: list[str] = []
        stream = _stream(kafka_bootstrap, tmp_path / f"lake{attempt}", topic, 0.5, states)
        summary = stream.run(max_records=300, max_idle_s=20)
        assert (summary.records_in, summary.partitions) == (300, 4), f"start {attempt}: {states}"
