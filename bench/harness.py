"""What every benchmark shares: the broker it runs against, the comparison it reports, the record.

A benchmark module in `bench/` defines `run(context: BenchContext) -> list[Comparison]`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from core.admin import describe_cluster
from core.settings import BrokerSettings
from tidelake.broker import LocalBroker, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
console = Console(highlight=False)


@dataclass
class Comparison:
    """One figure of ours beside the baseline's, from the same run.

    `higher_is_better` says how to read the ratio ours/baseline (throughput: higher; latency: lower).
    """

    benchmark: str
    metric: str
    unit: str
    ours: float
    baseline: float
    baseline_name: str
    higher_is_better: bool = True
    goal: str = ""
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")


@dataclass
class BenchContext:
    """What a benchmark may use: a real broker, a scratch folder, and the requested scale."""

    bootstrap_servers: str
    scratch: Path
    scale: float = 1.0
    options: dict[str, str] = field(default_factory=dict)


@contextmanager
def bench_broker(scratch: Path) -> Iterator[str]:
    """The broker for the run: TIDELAKE_KAFKA__BOOTSTRAP_SERVERS if set, else a fresh local one."""
    address = os.environ.get("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS")
    if address:
        describe_cluster(address)
        yield address
        return
    broker = LocalBroker(
        BrokerSettings(port=free_port(), controller_port=free_port(), data_dir=scratch / "kafka")
    )
    state = broker.start()
    try:
        yield state.bootstrap_servers
    finally:
        broker.stop()


def print_comparisons(rows: list[Comparison]) -> None:
    table = Table("benchmark", "metric", "tidelake", "baseline", "ratio", "goal")
    for row in rows:
        table.add_row(
            row.benchmark,
            f"{row.metric} ({row.unit})",
            f"{row.ours:,.2f}",
            f"{row.baseline:,.2f} ({row.baseline_name})",
            f"{row.ratio:.2f}" + ("" if row.higher_is_better else " (lower is better)"),
            row.goal,
        )
    console.print(table)


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    return done.stdout.strip() or "unknown"


def append_results(rows: list[Comparison], path: Path = RESULTS_FILE) -> None:
    """Add one table row per comparison under the "Results" heading of docs/benchmarks.md."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    lines = [
        f"| {when} | {_git_commit()} | {machine} | {r.benchmark} | {r.metric} ({r.unit}) | {r.ours:,.2f} | "
        f"{r.baseline:,.2f} ({r.baseline_name}) | {r.ratio:.2f} | {r.notes} |"
        for r in rows
    ]
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")
