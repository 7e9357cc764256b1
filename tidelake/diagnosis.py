"""Which process of the pipeline is stuck, and why: what the demo prints when it does not settle.

Per stream app and delivery stream, from the status board (its state and counters), its consumer
group (records left to read, partitions assigned) and whether it still runs, one line:

    sink clickstream-events: running, 0 records in, lag 10,000 - 0 records read, group has no assigned partitions
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.admin import GroupLag
from core.status_board import RETRYING, RUNNING


@dataclass(frozen=True)
class Finding:
    """One process's line, and whether it looks done (nothing left for it to do)."""

    kind: str
    name: str
    state: str
    records_in: int | None
    lag: int | None
    diagnosis: str
    settled: bool

    def line(self) -> str:
        records = "records in ?" if self.records_in is None else f"{self.records_in:,} records in"
        lag = "lag ?" if self.lag is None else f"lag {self.lag:,}"
        return f"{self.kind} {self.name}: {self.state}, {records}, {lag} - {self.diagnosis}"


def diagnose(
    kind: str,
    name: str,
    *,
    alive: bool,
    metrics: dict[str, Any] | None,
    group: GroupLag | None,
    assigned: int | None = None,
) -> Finding:
    """The finding for one stream app (`kind` "stream") or delivery stream ("sink").

    `metrics` is its status-board entry's (None: it never published one), `group` its consumer
    group's lag (None: the group has committed nothing), `assigned` the partitions the group's
    members hold (None: unknown). Rules, first match wins: exited; no board entry; retrying;
    no partition assigned; records left to read; windows open; rows not yet acknowledged; records
    buffered; else settled.
    """
    state = (
        "exited" if not alive else ("no status" if metrics is None else str(metrics.get("state", RUNNING)))
    )
    records_in = None
    if metrics is not None:
        records_in = metrics.get("events_in" if kind == "stream" else "records_in")
    left = None
    if group is not None:
        left = sum(p.lag for p in group.partitions if not p.caught_up)
    read = f"{records_in:,} records read" if records_in is not None else "no count of records read"

    def finding(diagnosis: str, settled: bool = False) -> Finding:
        return Finding(kind, name, state, records_in, left, diagnosis, settled)

    if not alive:
        return finding("the process has exited: see its log")
    if metrics is None:
        return finding("no status-board entry: still starting, or stuck before its first poll of Kafka")
    if metrics.get("state") == RETRYING:
        return finding("Kafka does not answer it: retrying")
    no_partitions = assigned == 0 or (kind == "sink" and metrics.get("partitions") == 0)
    if no_partitions:
        return finding(f"{read}, group has no assigned partitions")
    if left:
        if not records_in:
            return finding(f"{read} while its group has {left:,} to read: the consumer does not fetch")
        return finding(f"{left:,} records behind")
    if kind == "stream":
        if metrics.get("windows_open"):
            return finding(
                f"{metrics['windows_open']:,} windows still open (event time or the idle close has not closed them)"
            )
        if metrics.get("rows_pending"):
            return finding(f"{metrics['rows_pending']:,} rows not yet acknowledged by Kafka")
    if kind == "sink" and metrics.get("buffered"):
        return finding(f"{metrics['buffered']:,} records buffered, not yet in the lake")
    return finding("settled", settled=True)
