"""Background compaction: every interval, merge the small files of a lake's closed partitions.

    compactor = BackgroundCompactor(lake, ["clickstream_events"])   # None: every dataset
    compactor.start()            # a daemon thread; or compactor.run(stop_event) in the foreground
    ...
    compactor.stop()

A delivery stream adds one file per Kafka partition to each partition folder its flush has records
for: at the demo's 5 s interval a looping replay leaves about 60 files in every event-time hour
(docs/benchmarks.md derives it), and a query's time grows with the file count. Each round merges
every *closed* partition folder that has two or more files with `sinks.compaction`, which swaps the
folder atomically for readers and never merges a file of a delivery stream's unfinished flush.

A partition folder (`dt=YYYY-MM-DD/hour=HH/` of a dataset) is closed when both hold:

1. event time: its hour ended at least `lateness_s` ago, measured from the later of the clock and
   the dataset's event-time frontier (the start of its newest hour folder: a record has reached
   that hour, not necessarily its end). The frontier counts when
   event time runs ahead of the clock (a looping replay at 50x crosses an hour in 72 s), the clock
   when event time lags or stops (old logs replayed, a source that went quiet). The default, 900 s,
   is the longest buffering interval Firehose allows: a record that arrived within its hour has
   been flushed by then, whatever the stream's buffering hints. A folder whose path holds no
   `dt=` has no event time: only rule 2 applies to it; `dt=` without `hour=` spans the day.
2. quiet: nothing was added to the folder for `quiet_s`, by its modification time, which every
   rename of a finished file into it (and every file a sink begins there) moves on. This is what
   keeps an hour that a replay of old events is still writing open, although the clock says it
   ended years ago.

A late event, later than both, still lands in its hour's folder as a new file next to the merged
one; a later round merges the two. So a rule that closed a folder too early costs a second merge,
never a row.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import SinkWriteError
from core.lake import DATASET_NAME, NULL_PARTITION, PARQUET_SUFFIX, dataset_dir, is_visible_file
from sinks.compaction import Compaction, compact_folders

log = logging.getLogger(__name__)

#: Rule 1's allowance: Firehose's longest buffering interval (IntervalInSeconds <= 900).
DEFAULT_LATENESS_S = 900.0
#: Rule 2: longer than the shipped delivery streams' 5 s interval by far, and than any pause of a
#: replay that is still writing an hour; at the demo's 50x pace it leaves about 2 hours open.
DEFAULT_QUIET_S = 120.0
#: Seconds between two rounds.
DEFAULT_INTERVAL_S = 60.0

_HOUR_S = 3600.0
_DAY_S = 86400.0


@dataclass(frozen=True)
class PartitionState:
    """A partition folder as the closed rule sees it."""

    folder: Path
    partition: str  # relative to the dataset, e.g. dt=2019-01-22/hour=00
    files: int  # visible Parquet files
    modified_s: float  # the folder's mtime (epoch seconds)
    #: [start, end) of its event time in epoch seconds; None when its path names no `dt=`.
    span: tuple[float, float] | None


@dataclass(frozen=True)
class ClosedRule:
    """When a partition folder is closed: see the module docstring."""

    lateness_s: float = DEFAULT_LATENESS_S
    quiet_s: float = DEFAULT_QUIET_S

    def closed(self, partitions: list[PartitionState], now_s: float) -> list[PartitionState]:
        """The closed folders among one dataset's `partitions` at clock `now_s` (epoch seconds)."""
        starts = [p.span[0] for p in partitions if p.span is not None]
        reference = max([now_s, *starts])  # the later of the clock and the dataset's frontier
        return [
            p
            for p in partitions
            if now_s - p.modified_s >= self.quiet_s
            and (p.span is None or reference - p.span[1] >= self.lateness_s)
        ]


def partition_span(partition: str) -> tuple[float, float] | None:
    """[start, end) in epoch seconds (UTC) of a folder path's `dt=YYYY-MM-DD[/hour=HH]`; None
    without a `dt=` (or with the NULL partition or a value that is not a date or hour)."""
    values = dict(part.partition("=")[::2] for part in partition.split("/") if "=" in part)
    day, hour = values.get("dt"), values.get("hour")
    if day is None or NULL_PARTITION in (day, hour):
        return None
    try:
        start = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
        if hour is None:
            return start, start + _DAY_S
        hours = int(hour)
    except ValueError:
        return None
    if not 0 <= hours < 24:
        return None
    return start + hours * _HOUR_S, start + (hours + 1) * _HOUR_S


def scan_partitions(lake: Path, dataset: str) -> list[PartitionState]:
    """Every folder of `dataset` that holds visible Parquet files, in path order; none when the
    dataset has no folder (yet)."""
    root = dataset_dir(lake, dataset)
    found = []
    for here, subfolders, filenames in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if is_visible_file(Path(d)))
        files = sum(1 for f in filenames if f.endswith(PARQUET_SUFFIX) and is_visible_file(Path(f)))
        if not files:
            continue
        folder = Path(here)
        try:
            modified_s = folder.stat().st_mtime
        except FileNotFoundError:  # swapped away (another compactor) since the walk listed it
            continue
        partition = folder.relative_to(root).as_posix()
        found.append(PartitionState(folder, partition, files, modified_s, partition_span(partition)))
    return found


def lake_datasets(lake: Path) -> list[str]:
    """The dataset folders of the lake (table names; not `_errors`, `_sinks`, hidden or links)."""
    if not lake.is_dir():
        return []
    return sorted(
        e.name for e in os.scandir(lake) if DATASET_NAME.match(e.name) and e.is_dir(follow_symlinks=False)
    )


@dataclass
class Round:
    """What one round did."""

    compacted: list[tuple[str, Compaction]] = field(default_factory=list)  # (dataset, compaction)
    open_partitions: int = 0  # folders of two or more files left because they are not closed
    failed: list[str] = field(default_factory=list)  # "dataset/partition: why"


class BackgroundCompactor:
    """Compacts the closed partitions of `datasets` (None: every dataset of the lake, looked up each
    round) every `interval_s`. `clock` gives epoch seconds (the folders' mtimes are on that scale).

    A partition that cannot be merged (a file that is not Parquet, a full disk) is logged and
    retried next round; the others go on. Only a lake where folders cannot be swapped atomically
    (no renameat2) stops the compactor, with SinkWriteError.
    """

    def __init__(
        self,
        lake: Path,
        datasets: list[str] | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        rule: ClosedRule | None = None,
        compression: str = "snappy",
        clock: Callable[[], float] = time.time,
        on_round: Callable[[Round], None] | None = None,
    ) -> None:
        self.lake = lake
        self.datasets = datasets
        self.interval_s = interval_s
        self.rule = rule or ClosedRule()
        self.compression = compression
        self.clock = clock
        self.on_round = on_round
        self.rounds = 0
        self.error: BaseException | None = None  # what stopped the background thread, if anything
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Round:
        """One round: compact every closed partition with two or more files, now."""
        done = Round()
        for dataset in self.datasets if self.datasets is not None else lake_datasets(self.lake):
            partitions = scan_partitions(self.lake, dataset)  # none when the dataset has no folder yet
            # the rule sees every folder (merged ones set the frontier too); only 2+ files merge
            closed = [p for p in self.rule.closed(partitions, self.clock()) if p.files >= 2]
            done.open_partitions += sum(1 for p in partitions if p.files >= 2) - len(closed)
            for partition in closed:
                try:
                    merged = compact_folders(
                        self.lake, dataset, [partition.folder], compression=self.compression
                    )
                except SinkWriteError as exc:
                    if not exc.retriable:
                        raise
                    self._failed(done, dataset, partition, exc)
                except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                    self._failed(done, dataset, partition, exc)
                else:
                    done.compacted.extend((dataset, c) for c in merged)
        self.rounds += 1
        if self.on_round is not None:
            self.on_round(done)
        return done

    @staticmethod
    def _failed(done: Round, dataset: str, partition: PartitionState, exc: Exception) -> None:
        why = f"{dataset}/{partition.partition}: {exc}"
        done.failed.append(why)
        log.warning("compaction of %s failed; it is tried again next round", why)

    def run(self, stop: threading.Event | None = None) -> None:
        """Rounds every `interval_s` until `stop` is set (the first round at once)."""
        stop = stop or self._stop
        while not stop.is_set():
            self.run_once()
            stop.wait(self.interval_s)

    def start(self) -> BackgroundCompactor:
        """Run the rounds in a daemon thread; `stop()` ends it. An error that stops it is kept in `error`."""

        def main() -> None:
            try:
                self.run(self._stop)
            except BaseException as exc:
                self.error = exc
                log.error("background compaction stopped: %s", exc)

        self._stop.clear()
        self._thread = threading.Thread(target=main, name="tidelake-compactor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the thread to stop and wait for the round in progress (at most `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> BackgroundCompactor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
