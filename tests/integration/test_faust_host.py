"""tidelake's windows hosted in a user's own Faust app (`FaustWindows`), on the real broker: the
user's agent and the windows run in one `faust worker`, on 4 partitions, and the final rows equal
DuckDB's GROUP BY, on a clean run and across `kill -9` and a restart; after the drain the consumer
group holds exactly the offsets of the last snapshot. The Faust runtime (`tidelake stream run
--runtime faust`) commits in its own Faust group, whose lag `tidelake status` shows.

The user's app is this module run as a script (`python -m tests.integration.test_faust_host worker`):
what a user writes, started with Faust's own command line (`app.main()`), signal handlers and all.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.admin import admin_client, consumer_group_lag, create_topics
from core.topics import TopicSpec, stream_app_group
from tests.stream_events import clickstream
from tests.stream_kafka import (
    REPO,
    RUNTIMES,
    TopicReader,
    make_spec,
    produce,
    produce_raw,
    stop_and_summary,
    terminate,
    worker_process,
    write_spec,
)
from tests.stream_oracle import expected_rows, last_per_window, row_sort_key

pytestmark = pytest.mark.integration

PINGS = [f"ping-{i}".encode() for i in range(5)]


def user_app(bootstrap: str, spec_file: str, state_dir: str, pings: str) -> Any:
    """The example user app: its own agent (pings -> upper-cased pongs) and tidelake's windows."""
    import faust

    from stream_apps import FaustWindows

    Path(state_dir).mkdir(parents=True, exist_ok=True)  # Faust makes its data folder, not the parents
    app = faust.App(
        f"user-app-{Path(spec_file).stem}",
        broker=f"kafka://{bootstrap}",
        datadir=str(Path(state_dir) / "faust"),
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    ping_topic = app.topic(pings, value_serializer="raw")
    pong_topic = app.topic(f"{pings}.pongs", value_serializer="raw")

    @app.agent(ping_topic)
    async def pong(stream: Any) -> None:
        async for value in stream:
            await pong_topic.send(value=value.upper())

    FaustWindows(app, spec_file, state_dir=state_dir, tick_s=0.2, checkpoint_interval_s=0.2)
    record_seek_threads(Path(state_dir) / "seek-threads.txt")
    return app


def record_seek_threads(path: Path) -> None:
    """Write the thread of every aiokafka `seek` to `path`, one line each. Faust's aiokafka consumer
    lives on a thread of its own; a seek from the app's main thread races that thread's fetch loop
    (a KeyError in aiokafka's `fetched_records` that crashes Faust's fetcher)."""
    import threading

    import aiokafka

    seek = aiokafka.AIOKafkaConsumer.seek

    def recorded(consumer: Any, partition: Any, offset: int) -> None:
        main = threading.current_thread() is threading.main_thread()
        with path.open("a") as out:
            out.write(f"{'main' if main else 'consumer'} {partition.partition} {offset}\n")
        seek(consumer, partition, offset)

    aiokafka.AIOKafkaConsumer.seek = recorded


@contextmanager
def user_worker(bootstrap: str, spec_file: Path, state_dir: Path, pings: str,
                log: Path) -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`faust worker` of the user app in a subprocess; stopped (SIGTERM, then SIGKILL) on exit."""
    env = dict(os.environ, USER_APP_ARGS="\n".join([bootstrap, str(spec_file), str(state_dir), pings]))
    with log.open("a") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_faust_host", "worker", "-l", "warn"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        terminate(process, timeout_s=60)


def _stop(process: subprocess.Popen[str], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0, log.read_text()[-3000:]


def _snapshot_offsets(state_dir: Path, app: str) -> dict[int, int]:
    files = sorted((state_dir / app).glob("snapshot-*.pickle"))
    assert len(files) == 1, files  # a confirmed snapshot, the only one left
    return dict(pickle.loads(files[0].read_bytes())["offsets"])


def _group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int | None, int]]:
    (lag,) = [g for g in consumer_group_lag(bootstrap) if g.group == group]
    return {p.partition: (p.committed, p.end_offset) for p in lag.partitions if p.topic == topic}


def _setup(kafka_bootstrap: str, make_topic: Any, tmp_path: Path, name: str) -> tuple[Any, str, Path]:
    source = make_topic(partitions=4)
    pings = make_topic(partitions=1, suffix="pings")
    create_topics(kafka_bootstrap, [TopicSpec(f"{pings}.pongs", 1)])
    spec = make_spec(source, "tumbling:60s", name, aggregates=["count", "sum:bytes"])
    return spec, pings, write_spec(spec, tmp_path / f"{name}.toml")


def test_user_app_with_its_own_agent_and_the_windows_equals_duckdb(
    kafka_bootstrap: str, make_topic: Any, tmp_path: Path
) -> None:
    spec, pings, spec_file = _setup(kafka_bootstrap, make_topic, tmp_path, "faust-host-clean")
    events = clickstream(3000, seed=21)
    expected = expected_rows(events, spec)
    produce(kafka_bootstrap, spec.source, events)
    produce_raw(kafka_bootstrap, pings, PINGS)
    log = tmp_path / "worker.log"
    state = tmp_path / "state"
    with user_worker(kafka_bootstrap, spec_file, state, pings, log) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= len(expected), 180, f"{len(expected)} rows", worker)
        pongs = TopicReader(kafka_bootstrap, f"{pings}.pongs")
        pongs.wait_until(lambda r: len(r) >= len(PINGS), 60, "the user agent's pongs", worker)
        _stop(worker, log)
    reader.poll()
    rows = reader.values()
    reader.close()
    assert sorted(rows, key=row_sort_key) == expected  # one final row per window, no duplicates
    assert [m.value for m in pongs.messages] == [p.upper() for p in PINGS]  # the user's agent ran too
    pongs.close()
    # the offsets like any consumer's: the group holds exactly what the snapshot has applied, the end
    snapshot = _snapshot_offsets(state, spec.name)
    group = _group_offsets(kafka_bootstrap, stream_app_group(spec.name), spec.source)
    assert {p: committed for p, (committed, _) in group.items()} == snapshot
    assert {p: end for p, (_, end) in group.items()} == snapshot
    assert sum(snapshot.values()) == len(events)


def test_user_app_after_kill_9_and_restart_equals_duckdb(
    kafka_bootstrap: str, make_topic: Any, tmp_path: Path
) -> None:
    spec, pings, spec_file = _setup(kafka_bootstrap, make_topic, tmp_path, "faust-host-kill")
    events = clickstream(4000, seed=4, spread_s=0.5)
    expected = expected_rows(events, spec)
    half = len(events) // 2
    produce(kafka_bootstrap, spec.source, events[:half])
    produce_raw(kafka_bootstrap, pings, PINGS)
    log = tmp_path / "worker.log"
    state = tmp_path / "state"
    with user_worker(kafka_bootstrap, spec_file, state, pings, log) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= 1, 180, "the first rows", worker)
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=60) == -signal.SIGKILL
    produce(kafka_bootstrap, spec.source, events[half:])
    with user_worker(kafka_bootstrap, spec_file, state, pings, log) as worker:
        reader.wait_until(
            lambda r: len(last_per_window(r, spec)) >= len(expected), 180, f"{len(expected)} windows", worker
        )
        _stop(worker, log)
    reader.poll()
    rows = reader.values()
    reader.close()
    copies = len(rows) - len(expected)
    assert copies == 0, f"{copies} duplicate rows"
    assert sorted(rows, key=row_sort_key) == expected  # exactly one final row per window, read committed
    assert sum(row["count"] for row in rows) == len(events)  # no loss, no double count
    snapshot = _snapshot_offsets(state, spec.name)
    group = _group_offsets(kafka_bootstrap, stream_app_group(spec.name), spec.source)
    assert {p: committed for p, (committed, _) in group.items()} == snapshot
    assert sum(snapshot.values()) == len(events)
    # The user's group commits nothing of the source, so the restarted app began each partition at
    # offset 0 and the windows moved it to the snapshot's offset: on Faust's consumer thread
    seeks = (state / "seek-threads.txt").read_text().splitlines()
    assert seeks and {line.split()[0] for line in seeks} == {"consumer"}, seeks


def _status_group(bootstrap: str, group: str) -> dict[str, Any]:
    """The group as `tidelake status --json` shows it."""
    result = subprocess.run(
        [sys.executable, "-m", "tidelake.cli", "status", "-b", bootstrap, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    status = json.loads(result.stdout.strip().splitlines()[-1])
    (found,) = [g for g in status["groups"] if g["group"] == group]
    return found


def test_faust_runtime_group_holds_the_snapshot_offsets_and_status_shows_its_lag(
    kafka_bootstrap: str, make_topic: Any, tmp_path: Path
) -> None:
    """`tidelake stream run --runtime faust`: Faust's own group is `tidelake-stream-<app>`, the
    checkpoints commit there, and status reads its lag like any consumer's."""
    source = make_topic(partitions=4)
    spec = make_spec(source, "tumbling:60s", "faust-runtime-lag", aggregates=["count"])
    spec_file = write_spec(spec, tmp_path / "spec.toml")
    events = clickstream(2000, seed=7)
    expected = expected_rows(events, spec)
    produce(kafka_bootstrap, source, events)
    state = tmp_path / "state"
    with worker_process(spec_file, kafka_bootstrap, state, extra=RUNTIMES["faust"]) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= len(expected), 180, f"{len(expected)} rows", worker)
        summary = stop_and_summary(worker)
    reader.close()
    assert (summary["events_in"], summary["rows_out"], summary["rows_pending"]) == (2000, len(expected), 0)
    group = stream_app_group(spec.name)
    snapshot = _snapshot_offsets(state, spec.name)
    assert sum(snapshot.values()) == 2000
    drained = _status_group(kafka_bootstrap, group)
    assert {p["partition"]: p["committed"] for p in drained["partitions"]} == snapshot
    assert (drained["lag"], drained["millis_behind_latest"]) == (0, 0)
    assert f"tidelake-{spec.name}" not in {g.group for g in consumer_group_lag(kafka_bootstrap)}  # one group
    with admin_client(kafka_bootstrap) as admin:  # a clean stop leaves the group: it can be deleted
        assert admin.describe_groups([group])[group]["group_state"] == "Empty"
    # --reset: the group sits at the end of every partition, the windows start over from the beginning
    with worker_process(spec_file, kafka_bootstrap, state, extra=(*RUNTIMES["faust"], "--reset")) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        reader.wait_until(lambda r: len(r) >= 2 * len(expected), 180, f"{len(expected)} rows again", worker)
        summary = stop_and_summary(worker)
    reader.close()
    assert (summary["events_in"], summary["rows_out"], summary["rows_pending"]) == (2000, len(expected), 0)
    assert _snapshot_offsets(state, spec.name) == snapshot
    more = clickstream(30, seed=8)
    produce(kafka_bootstrap, source, more)  # the app is stopped: its group falls behind by exactly these
    behind = _status_group(kafka_bootstrap, group)
    assert behind["lag"] == 30
    assert {p["partition"]: p["committed"] for p in behind["partitions"]} == snapshot


if __name__ == "__main__":
    user_app(*os.environ["USER_APP_ARGS"].split("\n")).main()
