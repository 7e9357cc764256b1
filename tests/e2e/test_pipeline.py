"""The whole pipeline on the shipped zanbil sample, reconciled exactly: `tidelake demo` as a user
runs it, and a broker restart in the middle of the replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from core.admin import describe_topics
from core.settings import BrokerSettings, load_settings
from core.topics import CLICKSTREAM_EVENTS, dlq_topic
from tests.e2e.pipeline_checks import app_mismatches, processes_with_env, sample_events
from tidelake.broker import LocalBroker, free_port
from tidelake.demo import Demo, DemoOptions

pytestmark = pytest.mark.e2e
SAMPLE_LINES = 10_000


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return sample_events()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker for this test alone: the demo uses the fixed topic names of the pipeline."""
    broker = LocalBroker(
        BrokerSettings(port=free_port(), controller_port=free_port(), data_dir=tmp_path / "kafka")
    )
    broker.start()
    yield broker
    broker.stop()


def demo_command(
    bootstrap: str, state_dir: Path, lake: Path, *extra: str
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of `tidelake demo --max-speed --json` on `bootstrap`, its state in `state_dir`."""
    command = [sys.executable, "-m", "tidelake.cli", "demo", "--max-speed", "--json", "--lake", str(lake),
               "--port", str(free_port()), *extra]  # fmt: skip
    env = {
        **os.environ,
        "TIDELAKE_RUNTIME__STATE_DIR": str(state_dir),
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
    }
    return command, env


def raw_event_counts(lake: Path) -> tuple[int, int]:
    files = [str(p) for p in (lake / "clickstream_events").rglob("*.parquet") if not p.name.startswith(".")]
    ((rows, distinct),) = duckdb.sql(
        f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet({files})"
    ).fetchall()
    return rows, distinct


def test_demo_reconciles_every_event_and_window_and_leaves_nothing_running(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    command, env = demo_command(bootstrap, state_dir, tmp_path / "lake")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    # events replayed = rows in clickstream_events + records in the DLQ, each event once
    assert report["replay"]["sent"] == SAMPLE_LINES
    assert report["replay"]["rejected"] == 0
    (dlq,) = describe_topics(bootstrap, [dlq_topic(CLICKSTREAM_EVENTS)])
    rows, distinct = raw_event_counts(tmp_path / "lake")
    assert (rows, distinct, dlq.records) == (SAMPLE_LINES, SAMPLE_LINES, 0)

    # every analytics dataset equals DuckDB's GROUP BY of the source file
    assert app_mismatches(tmp_path / "lake", events) == {}

    # the named queries answer what the events say: top pages per hour, bots excluded
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_json_auto(?)", [str(write_jsonl(tmp_path, events))]
    )
    expected_top = con.execute(
        "SELECT strftime(date_trunc('hour', event_time::TIMESTAMPTZ), '%Y-%m-%d %H:00:00+00:00'), "
        "row_number() OVER (PARTITION BY date_trunc('hour', event_time::TIMESTAMPTZ) ORDER BY count(*) DESC, page), "
        "page, count(*) FROM events WHERE NOT is_bot GROUP BY date_trunc('hour', event_time::TIMESTAMPTZ), page "
        "QUALIFY row_number() OVER (PARTITION BY date_trunc('hour', event_time::TIMESTAMPTZ) ORDER BY count(*) DESC, page) <= 3 "
        "ORDER BY 1, 2"
    ).fetchall()
    assert report["answers"]["top_pages_per_hour"] == [[h, str(r), p, str(v)] for h, r, p, v in expected_top]

    # stopping the demo leaves no process of it behind
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []


def write_jsonl(folder: Path, events: list[dict]) -> Path:
    path = folder / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_broker_restart_mid_replay_loses_and_duplicates_nothing(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    settings = load_settings(
        kafka={"bootstrap_servers": bootstrap},
        lake={"root": tmp_path / "lake"},
        runtime={"state_dir": tmp_path / "state"},
    )
    demo = Demo(settings, DemoOptions(speed=200.0, serve_port=free_port()), broker_configured=True)
    try:
        demo.start_pipeline()
        demo.start_replay()  # 2,443 s of event time at 200x: about 12 s
        # restart the broker once a fifth of the sample is in, while the replay goes on
        demo.watch(lambda s: s.events_in >= 2_000, 120, lambda s: None)
        own_broker.stop()
        time.sleep(1.0)
        own_broker.start()
        demo.watch(lambda s: demo.replay_summary() is not None, 300, lambda s: None)
        summary = demo.replay_summary()
        assert summary is not None
        assert (summary["sent"], summary["rejected"]) == (SAMPLE_LINES, 0)
        demo.watch(demo.drained(SAMPLE_LINES), 300, lambda s: None)
    finally:
        demo.stop()
    rows, distinct = raw_event_counts(tmp_path / "lake")
    assert (rows, distinct) == (SAMPLE_LINES, SAMPLE_LINES)
    (topic,) = describe_topics(bootstrap, [CLICKSTREAM_EVENTS])
    assert topic.records == SAMPLE_LINES  # the idempotent producer wrote no duplicate into Kafka either
    assert app_mismatches(tmp_path / "lake", events) == {}


def test_sigterm_stops_a_kept_running_demo_and_everything_it_started(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    command, env = demo_command(bootstrap, state_dir, tmp_path / "lake", "--keep-running")
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        first_line = demo.stdout.readline()  # type: ignore[union-attr]  # the answers, printed before it keeps running
        assert json.loads(first_line)["replay"]["sent"] == SAMPLE_LINES
        children = set(processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir))) - {demo.pid}
        assert len(children) == 11  # six stream apps, four delivery streams, the query server
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=120) == 130
    finally:
        if demo.poll() is None:  # a failed assertion above: still stop the demo the clean way
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=120)
            except subprocess.TimeoutExpired:
                demo.kill()
        demo.communicate(timeout=30)
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []
