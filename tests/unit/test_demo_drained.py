"""When `tidelake demo` calls the pipeline drained: read from the status board, never too early."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.admin import GroupLag, PartitionLag
from core.settings import load_settings
from core.status_board import ProcessStatus
from tidelake.demo import DELIVERY_STREAMS, STREAM_APPS, Demo, DemoOptions
from tidelake.stack import StackProcess, StackRecord
from tidelake.status import DatasetStats, PipelineStatus

EXPECTED_ROWS = 100


def _demo(tmp_path: Path) -> Demo:
    settings = load_settings(lake={"root": tmp_path / "lake"}, runtime={"state_dir": tmp_path / "state"})
    demo = Demo(settings, DemoOptions(settle_s=0), broker_configured=True)
    names = [("stream", app) for app in STREAM_APPS] + [("sink", stream) for stream in DELIVERY_STREAMS]
    record = StackRecord("127.0.0.1:9", str(tmp_path / "lake"), 8080)
    record.processes = [
        StackProcess(f"{kind}-{name}", [kind, "run", name], 1000 + i, None, "x.log")
        for i, (kind, name) in enumerate(names)
    ]
    demo.stack.save(record)
    return demo


def _status(
    stream_metrics: list[dict[str, Any]],
    lagging_groups: tuple[str, ...] = (),
    records_left: bool | None = True,
) -> PipelineStatus:
    settled = {"windows_open": 0, "rows_pending": 0, "state": "running"}
    streams = [
        ProcessStatus("stream", name, 1000 + i, 0.0, 0.0, {**settled, **metrics})
        for i, (name, metrics) in enumerate(zip(STREAM_APPS, stream_metrics, strict=True))
    ]
    sinks = [
        ProcessStatus("sink", name, 1000 + len(STREAM_APPS) + i, 0.0, 0.0, {"buffered": 0})
        for i, name in enumerate(DELIVERY_STREAMS)
    ]
    return PipelineStatus(
        bootstrap_servers="127.0.0.1:9",
        lake="lake",
        taken_at=0.0,
        broker_up=True,
        processes=streams + sinks,
        datasets=[DatasetStats("clickstream_events", 1, EXPECTED_ROWS, 1)],
        groups=[GroupLag(g, (PartitionLag("t", 0, 0, 2000, 5, records_left),)) for g in lagging_groups],
    )


def test_a_settled_pipeline_is_drained(tmp_path: Path) -> None:
    check = _demo(tmp_path).drained(EXPECTED_ROWS)
    assert check(_status([{}] * len(STREAM_APPS))) is True


@pytest.mark.parametrize(
    "unsettled",
    [
        {"state": "retrying"},  # in an outage retry: its last board entry may look idle
        {"rows_pending": 36},  # rows a crash left in the snapshot, not yet sent
        {"windows_open": 2},
        {"state": None, "rows_pending": None},  # an entry from before the app published them
    ],
)
def test_one_unsettled_stream_app_keeps_the_demo_waiting(tmp_path: Path, unsettled: dict[str, Any]) -> None:
    check = _demo(tmp_path).drained(EXPECTED_ROWS)
    metrics: list[dict[str, Any]] = [{}] * len(STREAM_APPS)
    metrics[-1] = unsettled
    assert check(_status(metrics)) is False
    assert check(_status([{}] * len(STREAM_APPS))) is True  # and it settles once that app has


def test_only_the_demos_own_consumer_groups_must_catch_up(tmp_path: Path) -> None:
    """A broker shared with tests held `tidelake-stream-faust-switch` 2,000 records behind for good:
    the demo waited for it and gave up after 120 s."""
    check = _demo(tmp_path).drained(EXPECTED_ROWS)
    settled = [{}] * len(STREAM_APPS)
    assert check(_status(settled, ("tidelake-stream-faust-switch", "test-sink-12dcba4d6d"))) is True
    assert check(_status(settled, ("tidelake-stream-page-views-1m",))) is False
    assert check(_status(settled, ("tidelake-sink-dead-letters",))) is False


def test_a_group_behind_by_transaction_markers_alone_has_caught_up(tmp_path: Path) -> None:
    """The stream apps write in transactions: each commit marker takes an offset of the analytics
    topics that no consumer receives, so the sinks' group stays 'behind' by them for good;
    `consumer_group_lag` says no record is left (tests/integration/test_group_lag.py)."""
    check = _demo(tmp_path).drained(EXPECTED_ROWS)
    settled = [{}] * len(STREAM_APPS)
    assert check(_status(settled, ("tidelake-sink-analytics",), records_left=False)) is True
    assert check(_status(settled, ("tidelake-sink-analytics",), records_left=None)) is False  # not looked at
