"""The whole pipeline on the shipped zanbil sample, reconciled exactly: `tidelake demo` as a user
runs it (it leaves the stack running; `tidelake down` or `--stop` stops it), and a broker restart in
the middle of the replay."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from core.admin import describe_topics
from core.settings import load_settings
from core.topics import CLICKSTREAM_EVENTS, dlq_topic
from producers.resume import id_ends, pass_of
from tests.e2e.pipeline_checks import (
    app_mismatches,
    processes_with_env,
    read_dataset,
    sample_events,
    topic_events,
)
from tidelake.broker import LocalBroker, free_port
from tidelake.demo import Demo, DemoOptions
from tidelake.stack import same_process

pytestmark = pytest.mark.e2e
SAMPLE_LINES = 10_000


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return sample_events()


def demo_command(
    bootstrap: str, state_dir: Path, lake: Path, *extra: str, pace: tuple[str, ...] = ("--max-speed",)
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of `tidelake demo --max-speed --json` on `bootstrap`, its state in `state_dir`."""
    command = [sys.executable, "-m", "tidelake.cli", "demo", *pace, "--json", "--lake", str(lake),
               "--console-port", str(free_port()), *extra]  # fmt: skip
    env = {
        **os.environ,
        "TIDELAKE_RUNTIME__STATE_DIR": str(state_dir),
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
    }
    return command, env


def raw_event_counts(lake: Path) -> tuple[int, int]:
    table = read_dataset(
        lake / "clickstream_events",
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM read_parquet({files})",
    )
    return (0, 0) if table is None else (table["n"][0].as_py(), table["d"][0].as_py())


def test_demo_reconciles_every_event_and_window_and_leaves_nothing_running(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    command, env = demo_command(bootstrap, state_dir, tmp_path / "lake", "--stop")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["stack"] == "stopped"

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

    # --stop leaves no process of it behind
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
        demo.start_pipeline(before_wait=demo.start_replay)  # 2,443 s of event time at 200x: about 12 s
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


def test_sigterm_during_the_demo_stops_everything_it_started(own_broker: LocalBroker, tmp_path: Path) -> None:
    """Ctrl-C (or SIGTERM) before the answers: the demo stops what it started, the stack included."""
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    command, env = demo_command(bootstrap, state_dir, tmp_path / "lake", pace=("--speed", "5"))
    command.remove("--json")  # the human output says when every process runs
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        lines = []
        for line in demo.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "processes running" in line:
                break
        assert lines[-1].startswith("12 processes running"), lines
        children = set(processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir))) - {demo.pid}
        # 6 stream apps, 4 delivery streams, the compactor, the query server and the replay
        assert len(children) == 13
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=120) == 130
    finally:
        stop_demo(demo)
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []
    assert not (state_dir / "stack" / "stack.json").exists()


def stop_demo(demo: subprocess.Popen) -> int:
    """SIGTERM, as Ctrl-C would: the demo stops every process it started; its exit code."""
    if demo.poll() is None:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            demo.kill()
    demo.communicate(timeout=30)
    return demo.returncode


def test_demo_run_again_or_looped_never_sends_an_event_twice_and_a_new_lake_gets_the_events(
    own_broker: LocalBroker, tmp_path: Path, events: list[dict]
) -> None:
    """Issue 13: a second `make demo` then `make demo DEMO_ARGS="--keep-running --loop"` replayed
    pass 0 again (the lake held 23,890 rows of 13,890 ids); a second checkout's new lake got nothing.
    The demo leaves the stack running; the second run reuses it; `tidelake down` stops it."""
    state_dir = tmp_path / "state"
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    lake, other_lake = tmp_path / "lake", tmp_path / "other-checkout" / "lake"
    port = str(free_port())

    def run_demo(demo_lake: Path, *extra: str) -> dict:
        command, env = demo_command(bootstrap, state_dir, demo_lake, *extra)
        command[command.index("--console-port") + 1] = port  # the same stack each time
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    base_env = demo_command(bootstrap, state_dir, lake)[1]
    try:
        first = run_demo(lake)
        running = set(processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)))
        assert len(running) == 12  # left running after the answers
        second = run_demo(lake, "--stop")
        assert set(processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir))) == set()
        assert (first["replay"]["sent"], first["replay"]["first_pass"]) == (SAMPLE_LINES, 0)
        assert second["replay"] == {}  # nothing replayed: the topic and this lake hold the sample
        assert raw_event_counts(lake) == (SAMPLE_LINES, SAMPLE_LINES)
        logo = ["2019-01-22 00:00:00+00:00", "1", "/settings/logo", "195"]
        assert first["answers"]["top_pages_per_hour"][0] == logo
        assert second["answers"] == first["answers"]

        # a second checkout: same broker and state, a lake of its own that holds nothing yet
        third = run_demo(other_lake, "--stop")
        assert third["replay"] == {}
        assert raw_event_counts(other_lake) == (SAMPLE_LINES, SAMPLE_LINES)
        assert third["answers"] == first["answers"]

        # the first lake once more, looping: it continues after what the topic holds (pass 1 on); the
        # demo answers after its first pass and leaves the loop running with the stack
        command, env = demo_command(bootstrap, state_dir, lake, "--loop", pace=("--speed", "500"))
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        looped = json.loads(done.stdout.strip().splitlines()[-1])
        assert looped["stack"] == "running"

        # up finds it running and starts nothing; status shows every process; down stops exactly them
        stack = json.loads((state_dir / "stack" / "stack.json").read_text())
        pids = {p["name"]: p["pid"] for p in stack["processes"]}
        assert len(pids) == 13 and "replay" in pids  # 12 and the looping replay
        assert set(pids.values()) == set(processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)))
        loop_port = command[command.index("--console-port") + 1]
        up = tidelake(env, tmp_path, "up", "--json", "--lake", str(lake), "--console-port", loop_port)
        assert json.loads(up)["started"] == []
        status = json.loads(tidelake(env, tmp_path, "status", "--json", "--lake", str(lake)))
        board = {(p["kind"], p["name"]): p for p in status["processes"] if p["pid"] in pids.values()}
        # 6 stream apps, 4 delivery streams and the compactor (serve and replay keep no board entry)
        assert len(board) == 11
        assert all(p["alive"] for p in board.values())
        down = json.loads(tidelake(env, tmp_path, "down", "--json"))
        assert sorted(down["stopped"] + down["killed"]) == sorted(pids)
        assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(state_dir)) == []
        # each recorded PID is gone, or now another process (its start time differs); a zombie
        # that init has not reaped yet counts as gone
        assert not any(same_process(p["pid"], p["start_ticks"]) for p in stack["processes"])

    finally:  # a failure above must not leave the stack running
        subprocess.run(
            [sys.executable, "-m", "tidelake.cli", "down"], env=base_env, capture_output=True, timeout=300
        )

    ids = pass_counts(ends := id_ends([e["event_id"] for e in events]), lake_event_ids(lake))
    assert ids[0] == SAMPLE_LINES and ids[1] >= 1  # pass 0 once, and the loop's passes after it
    rows, distinct = raw_event_counts(lake)
    assert rows == distinct == sum(ids.values())
    assert rows >= 2 * SAMPLE_LINES  # the demo answered once its first pass was in the lake
    # the first pass's answers are unchanged: its hour 00 still has 195 views of /settings/logo
    assert first_pass_logo_views(lake) == 195
    assert looped["answers"]["bounce_rate"] != []

    # the topic itself holds each event once: pass 0 and every pass the loop began, none twice
    (topic,) = describe_topics(bootstrap, [CLICKSTREAM_EVENTS])
    in_topic = [e["event_id"] for e in topic_events(bootstrap, topic.records)]
    assert len(in_topic) == len(set(in_topic)) == topic.records
    topic_passes = pass_counts(ends, in_topic)
    assert topic_passes[0] == topic_passes[1] == SAMPLE_LINES
    assert raw_event_counts(other_lake) == (SAMPLE_LINES, SAMPLE_LINES)  # untouched by the loop


def tidelake(env: dict[str, str], cwd: Path, *args: str) -> str:
    """stdout of `tidelake ARGS`, which must succeed."""
    done = subprocess.run([sys.executable, "-m", "tidelake.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def lake_event_ids(lake: Path) -> list[str]:
    table = read_dataset(lake / "clickstream_events", "SELECT event_id FROM read_parquet({files})")
    return [] if table is None else table["event_id"].to_pylist()


def pass_counts(ends: dict[str, str], event_ids: list[str]) -> collections.Counter:
    return collections.Counter(pass_of(event_id, ends) for event_id in event_ids)


def first_pass_logo_views(lake: Path) -> int:
    """Views of /settings/logo by people in hour 00 of 2019-01-22 among the first pass's events
    (those whose id is the line's own: pass 1 reaches into hour 00 too, from 00:40:44)."""
    ends = id_ends([e["event_id"] for e in sample_events()])
    table = read_dataset(
        lake / "clickstream_events",
        "SELECT event_id FROM read_parquet({files}, hive_partitioning = true) "
        "WHERE dt = DATE '2019-01-22' AND hour = 0 AND page = '/settings/logo' AND NOT is_bot",
    )
    rows = [] if table is None else table["event_id"].to_pylist()
    return sum(1 for event_id in rows if pass_of(event_id, ends) == 0)
