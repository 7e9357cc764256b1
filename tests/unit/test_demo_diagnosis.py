"""What the demo says when the pipeline does not settle: which process is stuck, and why (issue 13:
`demo --fresh --max-speed` ended with "did not settle within 120 s" while the clickstream-events
sink had read 0 of 10,000 records, and said nothing more)."""

from __future__ import annotations

from typing import Any

import pytest

from core.admin import GroupLag, PartitionLag
from tidelake.diagnosis import diagnose

SINK_IDLE = {"state": "running", "records_in": 0, "partitions": 4, "buffered": 0}


def _group(*lags: tuple[int, int, bool | None]) -> GroupLag:
    """A group with one partition per (committed, end, records_left)."""
    return GroupLag("g", tuple(PartitionLag("t", i, c, e, 0, left) for i, (c, e, left) in enumerate(lags)))


def test_a_sink_whose_group_holds_no_partition_is_named_with_the_reason() -> None:
    finding = diagnose(
        "sink", "clickstream-events", alive=True,
        metrics={**SINK_IDLE, "state": "waiting-for-partitions", "partitions": 0},
        group=None, assigned=0,
    )  # fmt: skip
    assert finding.line() == (
        "sink clickstream-events: waiting-for-partitions, 0 records in, lag ? - "
        "0 records read, group has no assigned partitions"
    )
    assert finding.settled is False


@pytest.mark.parametrize(
    ("kind", "alive", "metrics", "group", "assigned", "diagnosis"),
    [
        ("sink", False, SINK_IDLE, None, None, "the process has exited: see its log"),
        ("stream", True, None, None, None, "no status-board entry: still starting, or stuck before its first poll of Kafka"),
        ("sink", True, {**SINK_IDLE, "state": "retrying"}, None, 4, "Kafka does not answer it: retrying"),
        ("stream", True, {"state": "running", "events_in": 0}, None, 0, "0 records read, group has no assigned partitions"),
        ("sink", True, SINK_IDLE, _group((0, 2500, True), (0, 2500, True)), 4,
         "0 records read while its group has 5,000 to read: the consumer does not fetch"),
        ("sink", True, {**SINK_IDLE, "records_in": 7000}, _group((7000, 10000, True)), 4, "3,000 records behind"),
        ("stream", True, {"state": "running", "events_in": 10, "windows_open": 3, "rows_pending": 0}, None, None,
         "3 windows still open (event time or the idle close has not closed them)"),
        ("stream", True, {"state": "running", "events_in": 10, "windows_open": 0, "rows_pending": 36}, None, None,
         "36 rows not yet acknowledged by Kafka"),
        ("sink", True, {**SINK_IDLE, "records_in": 9, "buffered": 9}, None, 4, "9 records buffered, not yet in the lake"),
        # behind by transaction markers alone: nothing left to read, so settled
        ("sink", True, {**SINK_IDLE, "records_in": 20}, _group((10, 11, False), (10, 10, None)), 4, "settled"),
    ],
)  # fmt: skip
def test_each_way_of_being_stuck_has_its_own_line(
    kind: str,
    alive: bool,
    metrics: dict[str, Any] | None,
    group: GroupLag | None,
    assigned: int | None,
    diagnosis: str,
) -> None:
    finding = diagnose(kind, "x", alive=alive, metrics=metrics, group=group, assigned=assigned)
    assert finding.diagnosis == diagnosis
    assert finding.settled is (diagnosis == "settled")
