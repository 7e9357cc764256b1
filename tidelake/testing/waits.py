"""The stack's bounded waits: a delivery stream's records in the lake, a stream app's windows closed.

Both watch something real (Parquet footers in the lake, the app's counters on the status board,
the source topic's offsets in Kafka), never a clock, and raise `StackError` with the last thing they
saw when `timeout_s` runs out. The checks repeat every `CHECK_EVERY_S`; nothing sleeps a guessed
time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidelake.testing.stack import StackError

if TYPE_CHECKING:
    from tidelake.testing.apps import StreamApp
    from tidelake.testing.stack import TidelakeStack

CHECK_EVERY_S = 0.1


def lake_rows(lake: Path, dataset: str) -> tuple[int, int]:
    """(rows, files) of the dataset's visible Parquet files (footers only; a file being written has
    a hidden temp name and is not counted)."""
    import pyarrow.parquet as pq

    from core.lake import PARQUET_SUFFIX, is_visible_file

    folder = lake / dataset
    rows = files = 0
    if not folder.is_dir() or folder.is_symlink():
        return 0, 0
    for path in sorted(folder.rglob(f"*{PARQUET_SUFFIX}")):
        if is_visible_file(path) and all(not part.startswith(".") for part in path.relative_to(folder).parts):
            rows += pq.read_metadata(path).num_rows
            files += 1
    return rows, files


def error_files(lake: Path, dataset: str) -> int:
    """Files under the lake's error prefix for `dataset` (records that could not be delivered)."""
    from core.lake import ERRORS_DIR

    folder = lake / ERRORS_DIR / dataset
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def wait_delivered(stack: TidelakeStack, delivery_stream: str, n: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    rows = files = 0
    dataset = "?"
    flushed: dict[str, Any] = {}
    while True:
        left = deadline - time.monotonic()
        try:
            flushed = stack.flush(delivery_stream, timeout_s=max(0.5, left))
        except StackError as exc:
            if time.monotonic() >= deadline or "ResourceNotFoundException" in str(exc):
                msg = f"{n} records of {delivery_stream} were not delivered within {timeout_s:g} s: {exc}"
                raise StackError(msg) from None
            continue
        dataset = str(flushed["Dataset"])
        rows, files = lake_rows(stack.lake, dataset)
        if rows >= n:
            return rows
        if time.monotonic() >= deadline:
            errors = error_files(stack.lake, dataset)
            put = sum(int(v) for v in flushed.get("Offsets", {}).values())
            msg = (
                f"{n} records of Firehose stream {delivery_stream} were not in the lake within {timeout_s:g} s: "
                f"{rows} rows in {files} files under {stack.lake / dataset}; {put} records were put on its "
                f"topic {flushed.get('Topic')} and all are committed; {errors} files in the error prefix "
                f"_errors/{dataset}/ (records the transform failed or dropped do not become rows)"
            )
            raise StackError(msg)
        pause.wait(CHECK_EVERY_S)


def wait_windows_closed(stack: TidelakeStack, app: str | StreamApp, timeout_s: float) -> dict[str, Any]:
    from tidelake.testing.apps import StreamApp

    name = app.name if isinstance(app, StreamApp) else app
    source = app.source if isinstance(app, StreamApp) else None
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    wanted = _records_in(stack.bootstrap_servers, source) if source else 0
    metrics: dict[str, Any] = {}
    while True:
        metrics = _board_metrics(stack.state_dir, name, app.pid if isinstance(app, StreamApp) else None)
        if (
            metrics
            and int(metrics.get("events_in", 0)) >= wanted
            and int(metrics.get("windows_open", -1)) == 0
            and int(metrics.get("rows_pending", -1)) == 0
        ):
            return metrics
        if isinstance(app, StreamApp) and app.exited():
            msg = f"stream app {name} exited ({app.returncode()}) before its windows closed: {app.log_tail()}"
            raise StackError(msg)
        if time.monotonic() >= deadline:
            seen = {k: metrics.get(k) for k in ("events_in", "windows_open", "windows_closed", "rows_out",
                                                "rows_pending", "watermark", "state")} if metrics else "nothing on the status board"  # fmt: skip
            msg = (
                f"stream app {name} did not close its windows within {timeout_s:g} s: wanted {wanted} "
                f"events read from {source or 'its source'}, no window open and no row pending; saw {seen} "
                "(a window closes when the watermark passes its end or after the spec's idle_timeout)"
            )
            raise StackError(msg)
        pause.wait(CHECK_EVERY_S)


def _board_metrics(state_dir: Path, name: str, pid: int | None) -> dict[str, Any]:
    """The app's counters on the board (of process `pid` when given: not an earlier run's)."""
    from core.status_board import read_board

    for entry in read_board(state_dir):
        if entry.kind == "stream" and entry.name == name and pid in (None, entry.pid):
            return dict(entry.metrics)
    return {}


def _records_in(bootstrap: str, topic: str) -> int:
    """Records now in `topic` (log-end minus log-start offsets over its partitions)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return 0
        ends, starts = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)
        return sum(int(ends[tp]) - int(starts[tp]) for tp in partitions)
    finally:
        consumer.close(autocommit=False)
