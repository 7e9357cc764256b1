"""Every shipped app over the shipped zanbil sample: replay the file with `tidelake replay`, run the
app with `tidelake stream run NAME`, and compare its rows with DuckDB's GROUP BY of the same file."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from producers.parsing import parse_file
from stream_apps.catalog import shipped_specs
from tests.stream_kafka import REPO, TopicReader, worker_process, write_spec
from tests.stream_oracle import expected_rows, row_sort_key

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "zanbil-access-10k" / "access-10k.log"
APPS = ["page-views-1m", "active-visitors-5m", "visitor-sessions", "top-pages-5m", "error-rate-1m",
        "page-view-anomalies"]  # fmt: skip


@pytest.fixture(scope="module")
def sample_events() -> list[dict]:
    return [record.payload() for record in parse_file(SAMPLE).records]


@pytest.fixture(scope="module")
def replayed_topic(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The zanbil sample replayed once, at full speed, into a fresh 4-partition topic."""
    topic = f"test.stream-samples.{os.getpid()}.{tmp_path_factory.getbasetemp().name}"
    subprocess.run(
        [sys.executable, "-m", "tidelake.cli", "topics", "create", topic, "--partitions", "4", "-b", kafka_bootstrap],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tidelake.cli", "replay", str(SAMPLE), "--topic", topic, "--max-speed", "--json",
         "-b", kafka_bootstrap],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return topic


def test_shipped_apps_are_the_six_the_demo_runs() -> None:
    assert sorted(shipped_specs()) == sorted(APPS)


@pytest.mark.parametrize("name", APPS)
def test_shipped_app_over_zanbil_sample_equals_duckdb(
    name: str, sample_events: list[dict], replayed_topic: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    shipped = shipped_specs()[name]
    spec = dataclasses.replace(shipped, source=replayed_topic, sink_topic=f"{replayed_topic}.{name}")
    expected = expected_rows(sample_events, spec)
    with worker_process(
        write_spec(spec, tmp_path / f"{name}.toml"), kafka_bootstrap, tmp_path / "state"
    ) as worker:
        reader = TopicReader(kafka_bootstrap, spec.sink_topic)
        rows = reader.wait_until(
            lambda r: len(r) >= len(expected), 120, f"{len(expected)} rows of {name}", worker
        )
        reader.close()
    if spec.anomaly:
        scores = [row.pop("anomaly_score") for row in rows]
        assert all(isinstance(s, float) and s >= 0 for s in scores)
        assert max(scores) > 0
    assert sorted(rows, key=row_sort_key) == expected
