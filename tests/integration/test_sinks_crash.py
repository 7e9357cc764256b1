"""The crash drill: kill -9 the sink at random moments during a 100,000-record replay, restart it
each time; every event_id must end up in the lake exactly once and no reader may see a partial file."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.lake import is_visible_file
from tests.integration.sinks_support import (
    error_rows,
    event,
    lake_rows,
    producer,
    sink_command,
    write_clickstream_config,
)

pytestmark = pytest.mark.integration
RECORDS = 100_000
KILLS = 12


class LakeReader(threading.Thread):
    """Reads every visible file over and over, as a query engine would; any unreadable one is a failure."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.stop = threading.Event()
        self.reads = 0
        self.failures: list[str] = []

    def run(self) -> None:
        seen: set[tuple[str, int, int]] = set()  # each version of each file (path, inode, mtime) once
        while not self.stop.is_set():
            for path in list(self.folder.rglob("*.parquet")):
                if not is_visible_file(path):
                    continue
                try:
                    stat = path.stat()
                    version = (str(path), stat.st_ino, stat.st_mtime_ns)
                    if version in seen:
                        continue
                    pq.read_table(path)
                    seen.add(version)
                    self.reads += 1
                except FileNotFoundError:
                    continue  # replaced or removed between listing and reading: not a partial file
                except Exception as exc:  # any other error means a reader saw a broken file
                    self.failures.append(f"{path}: {exc}")
            time.sleep(0.02)


def _wait_until_delivering(board: Path, sink: subprocess.Popen, timeout_s: float = 30) -> None:
    """Until this run of the sink (its pid on the status board) has delivered a flush; a run that
    finds nothing left to deliver is killed after `timeout_s` all the same."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert sink.poll() is None, f"the sink exited early with {sink.returncode}"
        try:
            entry = json.loads(board.read_text())
        except (OSError, ValueError):
            entry = {}
        if entry.get("pid") == sink.pid and entry.get("metrics", {}).get("files", 0) > 0:
            return
        time.sleep(0.05)


def _produce_slowly(bootstrap: str, topic: str, done: threading.Event) -> None:
    """The replay: 100,000 events over about 20 s, so the kills land while records keep coming."""
    with producer(bootstrap) as out:
        for start in range(0, RECORDS, 2_000):
            for i in range(start, start + 2_000):
                out.send(topic, key=str(i % 97).encode(), value=json.dumps(event(i)).encode())
            out.flush(timeout=60)
            time.sleep(0.4)
    done.set()


def test_kill_dash_nine_at_random_moments_leaves_every_event_exactly_once(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=4)
    lake = tmp_path / "lake"
    config = write_clickstream_config(
        tmp_path / "crash.toml",
        "crash-drill",
        topic,
        'instance_id = "crash-drill-1"\n[buffer]\ninterval_s = 0.5\nrecords = 3000\n',
    )
    command = sink_command(config, lake, kafka_bootstrap)
    env = {**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "run")}
    (lake / "clickstream_events").mkdir(parents=True)
    reader = LakeReader(lake / "clickstream_events")
    reader.start()
    produced = threading.Event()
    replay = threading.Thread(target=_produce_slowly, args=(kafka_bootstrap, topic, produced), daemon=True)
    replay.start()
    chance = random.Random(20261123)
    kills = killed_mid_flush = 0
    rows_at_kill: list[int] = []
    try:
        while kills < KILLS:
            with (tmp_path / f"run-{kills}.log").open("w") as log:
                sink = subprocess.Popen(command, stdout=log, stderr=log, env=env)
                # a random moment once it delivers (imports, the group join and the first flush take
                # 2-8 s on a busy machine); it flushes every 0.5 s, so many kills land mid-flush
                _wait_until_delivering(tmp_path / "run" / "sink.crash-drill.json", sink)
                time.sleep(chance.uniform(0.0, 1.0))
                sink.kill()  # SIGKILL: no flush, no commit, no cleanup
                sink.wait(30)
            kills += 1
            rows_at_kill.append(lake_rows(lake, "clickstream_events")[0])
            if list((lake / "_sinks").rglob("*.json")):
                killed_mid_flush += 1
        replay.join(120)
        assert produced.is_set(), "the replay did not finish"
        final = subprocess.run(
            [*command, "--max-idle", "6"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert final.returncode == 0, final.stderr
    finally:
        reader.stop.set()
        reader.join(30)
    assert kills == KILLS
    print(
        f"rows in the lake at each kill: {rows_at_kill}; kills that left an unfinished flush: {killed_mid_flush}"
    )
    assert rows_at_kill[-1] > rows_at_kill[0], (
        "the sink made no progress between kills; the drill tested nothing"
    )
    assert lake_rows(lake, "clickstream_events", "count(*), count(DISTINCT event_id)") == (RECORDS, RECORDS)
    assert error_rows(lake, "clickstream_events") == []
    assert reader.failures == []
    assert reader.reads > 0
    assert not list((lake / "_sinks").rglob("*.json"))  # every interrupted flush was finished
    assert not [p for p in lake.rglob(".*") if p.is_file()]  # temp files of killed runs are not data
