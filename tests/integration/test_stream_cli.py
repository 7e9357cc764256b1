"""`tidelake stream list|run` as a user runs them: ad hoc flags over a replayed CSV, usage errors,
and the summary printed on Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from producers.parsing import parse_file
from stream_apps.spec import spec_from_mapping
from tests.stream_events import clickstream
from tests.stream_kafka import REPO, TopicReader, produce
from tests.stream_oracle import expected_rows, row_sort_key

pytestmark = pytest.mark.integration
FAST = dict(os.environ, TIDELAKE_STREAM__TICK_S="0.2", TIDELAKE_STREAM__CHECKPOINT_INTERVAL_S="0.2")


def tidelake(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidelake.cli", *args], cwd=REPO, env=FAST, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def write_sensor_csv(path: Path, rows: int = 600) -> Path:
    rng = random.Random(5)
    moment = dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)
    lines = ["ts,sensor,reading"]
    for _ in range(rows):
        moment += dt.timedelta(seconds=rng.randrange(0, 6))
        lines.append(f"{moment:%Y-%m-%dT%H:%M:%SZ},s{rng.randrange(4)},{rng.randrange(0, 1000) / 10}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ad_hoc_flags_window_any_timestamped_csv(kafka_bootstrap, make_topic, tmp_path: Path) -> None:
    topic = make_topic(partitions=4)
    csv = write_sensor_csv(tmp_path / "sensors.csv")
    replayed = tidelake("replay", str(csv), "--time-field", "ts", "--key-field", "sensor", "--topic", topic,
                        "--max-speed", "--json", "-b", kafka_bootstrap)  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    flags = ["--source", topic, "--key-field", "sensor", "--time-field", "ts", "--window", "hopping:120s/60s",
             "--agg", "count", "--agg", "sum:reading", "--agg", "avg:reading", "--agg", "count_distinct:ts",
             "--idle-timeout", "2s", "--sink-topic", f"{topic}.out"]  # fmt: skip
    spec = spec_from_mapping(
        {"name": "x", "source": topic, "key_field": "sensor", "time_field": "ts", "window": "hopping:120s/60s",
         "aggregates": ["count", "sum:reading", "avg:reading", "count_distinct:ts"], "idle_timeout": "2s"}
    )  # fmt: skip
    events = [r.payload() for r in parse_file(csv, time_field="ts", key_field="sensor").records]
    expected = expected_rows(events, spec)
    command = [sys.executable, "-m", "tidelake.cli", "stream", "run", *flags, "--state-dir", str(tmp_path / "st"),
               "-b", kafka_bootstrap, "--json"]  # fmt: skip
    worker = subprocess.Popen(
        command, cwd=REPO, env=FAST, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        reader = TopicReader(kafka_bootstrap, f"{topic}.out")
        rows = reader.wait_until(lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows", worker)
        reader.close()
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    assert worker.returncode == 0, err
    assert sorted(rows, key=row_sort_key) == expected
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["app"] == f"{topic}.out".removeprefix("analytics.").lower()
    assert summary["events_in"] == 600
    assert summary["windows_closed"] == len(expected)


def test_run_prints_a_summary_table_when_it_ends(kafka_bootstrap, make_topic, tmp_path: Path) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, clickstream(50, seed=1))
    command = [sys.executable, "-m", "tidelake.cli", "stream", "run", "--source", topic, "--window", "tumbling:60s",
               "--agg", "count", "--sink-topic", f"{topic}.out", "--state-dir", str(tmp_path), "-b", kafka_bootstrap,
               "--stop-after", "50"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=FAST, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stream app" in done.stdout
    lines = {line.strip("│ ").split("│")[0].strip(): line.strip("│ ").split("│")[-1].strip()
             for line in done.stdout.splitlines() if line.count("│") == 3}  # fmt: skip
    assert lines["events in"] == "50"
    assert lines["late (to analytics.late-events)"] == "0"


def test_stream_list_json_names_the_shipped_apps() -> None:
    done = tidelake("stream", "list", "--json")
    assert done.returncode == 0, done.stderr
    names = [app["name"] for app in json.loads(done.stdout)["apps"]]
    assert names == ["active-visitors-5m", "error-rate-1m", "page-view-anomalies", "page-views-1m", "top-pages-5m",
                     "visitor-sessions"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give an app NAME or SPEC file"),
        (("page-views",), "no stream app named 'page-views'"),
        (("--window", "tumbling:60s", "--agg", "median:x", "--sink-topic", "t"), "aggregate 'median:x'"),
        (("--window", "weekly:1", "--agg", "count", "--sink-topic", "t"), "window 'weekly:1'"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: tuple[str, ...], message: str) -> None:
    done = tidelake("stream", "run", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_missing_source_topic_says_how_to_create_it(kafka_bootstrap, tmp_path: Path) -> None:
    done = tidelake("stream", "run", "--source", "test.no-such-topic-xyz", "--window", "tumbling:60s", "--agg",
                    "count", "--sink-topic", "t.out", "--state-dir", str(tmp_path), "-b", kafka_bootstrap)  # fmt: skip
    assert done.returncode == 2
    assert "source topic 'test.no-such-topic-xyz' does not exist" in done.stderr
    assert "tidelake topics create" in done.stderr
