"""The pipeline at a glance: what `tidelake status`, the demo's progress line and the console's
dashboard show. Everything is read from where it really lives: topic offsets and consumer groups
from Kafka, counters from the status board, datasets from the lake's folders, Kinesis streams made
by CreateStream from the Kinesis API's stream registry (`producers.kinesis_registry`).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.admin import GroupLag, TopicInfo, consumer_group_lag, describe_topics
from core.errors import BrokerUnavailable
from core.settings import Settings
from core.status_board import ProcessStatus, read_board
from core.topics import ANALYTICS_PREFIX, CLICKSTREAM_EVENTS, LATE_EVENTS, dlq_topic
from producers.kinesis_registry import REGISTRY_DIR, REGISTRY_FILE, StreamRegistry
from queries.catalog import discover


@dataclass
class DatasetStats:
    name: str
    files: int
    rows: int
    bytes: int


@dataclass
class KinesisStream:
    """A stream made by the Kinesis API's CreateStream. `shards` and `records` (end offsets summed,
    retention ignored) come from its topic; both are None when Kafka did not answer."""

    name: str
    mode: str  # PROVISIONED | ON_DEMAND
    created_at: float  # epoch seconds
    shards: int | None
    records: int | None


@dataclass
class PipelineStatus:
    """One snapshot of the whole pipeline."""

    bootstrap_servers: str
    lake: str
    taken_at: float
    broker_up: bool
    topics: list[TopicInfo] = field(default_factory=list)
    groups: list[GroupLag] = field(default_factory=list)
    processes: list[ProcessStatus] = field(default_factory=list)
    datasets: list[DatasetStats] = field(default_factory=list)
    kinesis_streams: list[KinesisStream] = field(default_factory=list)
    note: str = ""
    #: board entries left out of `processes`: stopped longer than `RECENT_S` ago
    hidden_processes: int = 0

    def topic_records(self, name: str) -> int:
        return next((t.records for t in self.topics if t.name == name), 0)

    @property
    def events_in(self) -> int:
        return self.topic_records(CLICKSTREAM_EVENTS)

    @property
    def rejected(self) -> int:
        return self.topic_records(dlq_topic(CLICKSTREAM_EVENTS))

    @property
    def late_events(self) -> int:
        return self.topic_records(LATE_EVENTS)

    def app_rows(self) -> dict[str, int]:
        """Rows each stream app has emitted (closed windows and updates), from its output topic."""
        return {
            t.name.removeprefix(ANALYTICS_PREFIX): t.records
            for t in self.topics
            if t.name.startswith(ANALYTICS_PREFIX) and t.name != LATE_EVENTS
        }

    @property
    def windows_closed(self) -> int:
        """Closed windows of the running stream apps, from their counters; an app on Flink keeps its
        windows inside Flink, so its count is its output topic's records (transaction markers too)."""
        rows = self.app_rows()
        from_board = [
            rows.get(p.name, 0) if p.metrics.get("runtime") == "flink" else p.metrics.get("windows_closed", 0)
            for p in self.processes
            if p.kind == "stream"
        ]
        return sum(from_board) if from_board else sum(rows.values())

    def to_dict(self) -> dict[str, Any]:
        apps = {
            name: {"name": name, "windows_closed": rows, "late_events": 0}
            for name, rows in self.app_rows().items()
        }
        for process in self.processes:
            if process.kind == "stream":
                entry = apps.setdefault(process.name, {"name": process.name})
                entry["windows_closed"] = process.metrics.get(
                    "windows_closed", entry.get("windows_closed", 0)
                )
                entry["late_events"] = process.metrics.get("late", 0)
                entry["windows_open"] = process.metrics.get("windows_open", 0)
                entry["alive"] = process.alive_at(self.taken_at)
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "lake": self.lake,
            "taken_at": self.taken_at,
            "broker_up": self.broker_up,
            "events_in": self.events_in,
            "rejected": self.rejected,
            "late_events": self.late_events,
            "windows_closed": self.windows_closed,
            "lake_files": sum(d.files for d in self.datasets),
            "lake_bytes": sum(d.bytes for d in self.datasets),
            "topics": [
                {
                    "name": t.name,
                    "partitions": t.partitions,
                    "records": t.records,
                    "end_offsets": list(t.end_offsets),
                }
                for t in self.topics
            ],
            "groups": [
                {
                    "group": g.group,
                    "lag": g.lag,
                    "millis_behind_latest": g.millis_behind_latest,
                    "partitions": [asdict(p) | {"lag": p.lag} for p in g.partitions],
                }
                for g in self.groups
            ],
            "apps": sorted(apps.values(), key=lambda a: a["name"]),
            "processes": [asdict(p) | {"alive": p.alive_at(self.taken_at)} for p in self.processes],
            "hidden_processes": self.hidden_processes,
            "datasets": [asdict(d) for d in self.datasets],
            "kinesis_streams": [asdict(k) for k in self.kinesis_streams],
            "note": self.note,
        }


def lake_datasets(lake: Path) -> list[DatasetStats]:
    """Files, rows (from Parquet footers) and bytes of each dataset in the lake."""
    if not lake.is_dir():
        return []
    return [DatasetStats(t.name, len(t.files), t.row_count(), t.total_bytes) for t in discover(lake)]


def kinesis_streams(state_dir: Path, topics: list[TopicInfo] | None) -> list[KinesisStream]:
    """The streams CreateStream made that still exist, by name, from the registry `tidelake serve`
    keeps under `state_dir` (none when it has never run there; nothing is created). `topics` are
    Kafka's (None: Kafka did not answer, so every registered stream is listed, without shards and
    records). A registry that cannot be read lists none."""
    folder = state_dir / REGISTRY_DIR
    if not (folder / REGISTRY_FILE).is_file():
        return []
    try:
        registry = StreamRegistry(folder)
        try:
            rows = registry.created_streams()
        finally:
            registry.close()
    except sqlite3.Error:
        return []
    if topics is None:
        return [KinesisStream(r.name, r.mode, r.created_s, None, None) for r in rows]
    by_name = {t.name: t for t in topics}
    return [
        KinesisStream(r.name, r.mode, r.created_s, by_name[r.name].partitions, by_name[r.name].records)
        for r in rows
        if r.name in by_name
    ]


def board_processes(
    state_dir: Path, now: float, *, all_processes: bool = False
) -> tuple[list[ProcessStatus], int]:
    """(entries alive or stopped within `RECENT_S` of `now`, how many others there are) on the
    status board; every entry with `all_processes`. Reading prunes entries older than a day."""
    board = read_board(state_dir, now=now)
    shown = [p for p in board if all_processes or p.recent_at(now)]
    return shown, len(board) - len(shown)


def collect_status(
    settings: Settings, *, with_groups: bool = True, all_processes: bool = False, now: float | None = None
) -> PipelineStatus:
    """Read the pipeline's state at `now` (Unix seconds, default the current time); a broker that
    does not answer is reported, not raised. `processes` holds the board's entries alive or stopped
    within `RECENT_S` (all of them with `all_processes`); entries older than a day are pruned.
    `kinesis_streams` are the streams CreateStream made, with shards and records from the topics
    already read (no further Kafka call)."""
    bootstrap = settings.kafka.bootstrap_servers
    taken_at = time.time() if now is None else now
    status = PipelineStatus(bootstrap, str(settings.lake.root), taken_at, broker_up=True)
    try:
        status.topics = describe_topics(bootstrap, timeout_ms=5_000)
        if with_groups:
            status.groups = consumer_group_lag(bootstrap, timeout_ms=5_000)
    except BrokerUnavailable as exc:
        status.broker_up = False
        status.note = str(exc)
    status.kinesis_streams = kinesis_streams(
        settings.runtime.state_dir, status.topics if status.broker_up else None
    )
    status.processes, status.hidden_processes = board_processes(
        settings.runtime.state_dir, taken_at, all_processes=all_processes
    )
    status.datasets = lake_datasets(settings.lake.root)
    return status
