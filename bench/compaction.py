"""Compaction benchmark: top pages per hour after an hour of `tidelake demo --loop`, on the lake the
loop leaves (small files) beside the same lake kept compacted by the background compactor.

The layout, derived and measured. The demo replays its 10,000-event sample (2,443 s of event time)
at 50x, so event time runs 50 s per second and one event-time hour lasts 72 s. Each delivery stream
flushes every 5 s (`interval_s = 5`), and a flush writes one file per Kafka partition (4) into each
hour folder it has records for: 72 / 5 = 14.4 flushes x 4 = about 58 files per hour folder. Measured
on a `demo --loop` run (hours 01-07 of 2019-01-22, on a machine at load 30): clickstream_events 60
per hour (15 per Kafka partition), page_views_1m 56-60, visitor_sessions 59-64, active_visitors_5m,
error_rate_1m and page_view_anomalies 32-38, top_pages_5m 12. An hour of loop covers 3,600 x 50 s =
50 event-time hours: about 3,000 files of clickstream_events and 14,000 in the lake.

How the lake is made. The sample's events as the looping replay publishes them (its `EncodedRecord`
values, pass shifts, Kafka's murmur2 partitioner over 4 partitions, each sent when due at 50x). Every
5 s of loop time is one flush: each Kafka partition's records go through the delivery stream's own
`Planner` (format conversion, prefixes, file names) and Parquet settings, as `DeliveryStream` does
with the shipped configs (clickstream-events; analytics for the stream apps' datasets, whose rows
are the windows that closed in the flush, computed from its events, keyed as the apps key them).
Each folder's time is set to the loop time of its last file.

The two sides, in one run. Without compaction: that lake. With it: a hard-linked copy of it, after
the background compactor's round at 60 s before the end of the hour (its default interval): the
state just before its next round, the worst a query meets. Before each timed run, the next flush of
the loop lands in both lakes, so that every run pays the catalog refresh a live query pays. The
figure is the median of `RUNS` runs of each side, alternating; `--scale` shortens the loop
(`python -m bench compaction --scale 0.1`: 6 minutes of loop, the quick variant).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from aiokafka.partitioner import murmur2
from kafka.consumer.fetcher import ConsumerRecord

from bench.harness import REPO_ROOT, BenchContext, Comparison, console
from producers.pacing import loop_shift_us
from producers.parsing import parse_file
from producers.replay import EncodedRecord
from producers.timestamps import TimeFormatter
from queries import named
from queries.engine import Engine, Limits
from sinks.compactor import DEFAULT_INTERVAL_S, BackgroundCompactor
from sinks.config import load_shipped
from sinks.planning import Planner
from sinks.records import RecordColumns

SAMPLE = REPO_ROOT / "data" / "zanbil-access-10k" / "access-10k.log"
SPEED = 50.0  # the demo's pace
FLUSH_S = 5.0  # the shipped delivery streams' interval
PARTITIONS = 4  # the demo's partitions per topic
LOOP_S = 3600.0  # an hour of --loop
RUNS = 3
GOAL = "<= 1 s after an hour of --loop"
_MINUTE_US = 60_000_000
_APPS = ("page-views-1m", "error-rate-1m", "page-view-anomalies", "active-visitors-5m", "top-pages-5m",
         "visitor-sessions")  # fmt: skip


@dataclass
class _Event:
    time_us: int
    page: str
    visitor: str
    status: int


def _loop_events(loop_s: float) -> list[tuple[float, bytes | None, bytes, _Event]]:
    """(send time in loop seconds, key, value, the event's fields) of a looping replay, in send order."""
    records = parse_file(SAMPLE).records
    encoded = [EncodedRecord(r) for r in records]
    first, last = min(r.time_us for r in records), max(r.time_us for r in records)
    fmt = TimeFormatter()
    out: list[tuple[float, bytes | None, bytes, _Event]] = []
    due = 0.0
    pass_no = 0
    while True:
        shift = loop_shift_us(pass_no, first, last, len(records))
        for record, enc in zip(records, encoded, strict=True):
            time_us = record.time_us + shift
            due = max(due, (time_us - first) / 1e6 / SPEED)  # sent in file order, each when due
            if due >= loop_s:
                return out
            fields = record.fields
            event = _Event(
                time_us,
                str(fields.get("page")),
                str(fields.get("visitor_id")),
                int(fields.get("status") or 0),
            )
            out.append((due, enc.key, enc.value(pass_no, shift, fmt), event))
        pass_no += 1


@functools.cache
def _keyed(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def _partition(key: bytes | None, i: int) -> int:
    """Kafka's default partitioner, as the replay's and the stream apps' producers use it."""
    return _keyed(key) if key is not None else i % PARTITIONS


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


class _Apps:
    """The stream apps' rows for the windows that close in each flush (tumbling minutes, 5-minute
    hops and tumbles, per-visitor activity), keyed as the apps key them."""

    def __init__(self) -> None:
        self.minutes: dict[int, list[_Event]] = defaultdict(list)
        self.closed_until = 0

    def rows(self, events: list[_Event]) -> dict[str, list[tuple[bytes, dict[str, Any]]]]:
        out: dict[str, list[tuple[bytes, dict[str, Any]]]] = defaultdict(list)
        for e in events:
            self.minutes[e.time_us // _MINUTE_US].append(e)
        if not events:
            return out
        watermark = max(e.time_us for e in events) // _MINUTE_US  # minutes before it are closed
        for minute in sorted(m for m in self.minutes if m < watermark):
            got = self.minutes[minute]
            start, end = _iso(minute * _MINUTE_US), _iso((minute + 1) * _MINUTE_US)
            for page, n in Counter(e.page for e in got).items():
                out["page-views-1m"].append(
                    (page.encode(), {"window_start": start, "window_end": end, "count": n, "page": page})
                )
            errors = sum(e.status >= 400 for e in got)
            server = sum(e.status >= 500 for e in got)
            out["error-rate-1m"].append((start.encode(), {"window_start": start, "window_end": end, "count": len(got),
                "sum_is_error": float(errors), "avg_is_error": errors / len(got),
                "sum_is_server_error": float(server), "avg_is_server_error": server / len(got)}))  # fmt: skip
            out["page-view-anomalies"].append((start.encode(), {"window_start": start, "window_end": end,
                "count": len(got), "anomaly_score": round(len(got) / 250, 6)}))  # fmt: skip
            hop_start = _iso((minute - 4) * _MINUTE_US)
            out["active-visitors-5m"].append((hop_start.encode(), {"window_start": hop_start, "window_end": end,
                "count_distinct_visitor_id": len({e.visitor for e in got}), "count": len(got)}))  # fmt: skip
            if (minute + 1) % 5 == 0:
                top = Counter(e.page for e in got).most_common(10)
                out["top-pages-5m"].append((hop_start.encode(), {"window_start": hop_start, "window_end": end,
                    "count": len(got), "top_10": [{"page": p, "count": n} for p, n in top]}))  # fmt: skip
            del self.minutes[minute]
        visits: dict[str, list[_Event]] = defaultdict(list)
        for e in events:
            visits[e.visitor].append(e)
        for visitor, got in visits.items():
            first, last = got[0].time_us, got[-1].time_us
            out["visitor-sessions"].append((visitor.encode(), {"window_start": _iso(first),
                "window_end": _iso(last + 30 * _MINUTE_US), "count": len(got),
                "count_distinct_page": len({e.page for e in got}), "visitor_id": visitor,
                "first_page": got[0].page, "last_page": got[-1].page,
                "duration_s": (last - first) / 1e6}))  # fmt: skip
        return out


class _Loop:
    """The sinks of a demo looping: `flush(k)` writes the k-th 5 s flush into the lake, as
    DeliveryStream would, and dates the folders it wrote to at that loop time."""

    def __init__(self, lake: Path, loop_s: float, epoch_s: float) -> None:
        self.lake = lake
        self.epoch_s = epoch_s  # wall-clock time of loop second 0
        self.events = _loop_events(loop_s)
        self.next_event = 0
        self.offsets: Counter[tuple[str, int]] = Counter()
        self.clickstream = Planner(load_shipped("clickstream-events"))
        self.analytics = Planner(load_shipped("analytics"))
        self.apps = _Apps()

    def flush(self, k: int) -> int:
        """Write flush `k` (loop time ((k + 1) x 5 s)); the number of files written."""
        until = (k + 1) * FLUSH_S
        batch = []
        while self.next_event < len(self.events) and self.events[self.next_event][0] < until:
            batch.append(self.events[self.next_event])
            self.next_event += 1
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for i, (_, key, value, _e) in enumerate(batch):
            by_partition[("clickstream.events", _partition(key, i))].append((key, value))
        for app, rows in self.apps.rows([b[3] for b in batch]).items():
            for i, (key, row) in enumerate(rows):
                by_partition[(f"analytics.{app}", _partition(key, i))].append((key, orjson.dumps(row)))
        folders: set[Path] = set()
        files = 0
        for (topic, partition), pairs in sorted(by_partition.items()):
            planner = self.clickstream if topic == "clickstream.events" else self.analytics
            records = RecordColumns.of(topic, partition, self._records(topic, partition, pairs, until))
            plan = planner.plan(records, set())
            parquet = planner.config.parquet
            for planned in plan.files:
                path = self.lake / planned.relative_path
                path.parent.mkdir(parents=True, exist_ok=True)
                # write_parquet's bytes without its fsyncs (durability is not what is measured here)
                pq.write_table(
                    planned.table,
                    path,
                    compression=None if parquet.compression == "none" else parquet.compression,
                    row_group_size=parquet.row_group_records,
                )
                folders.add(path.parent)
                files += 1
        stamp = self.epoch_s + until
        for folder in folders:
            os.utime(folder, (stamp, stamp))
        return files

    def _records(
        self, topic: str, partition: int, pairs: list[tuple[bytes | None, bytes]], until: float
    ) -> list[ConsumerRecord]:
        start = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += len(pairs)
        ms = int((self.epoch_s + until) * 1000)
        return [
            ConsumerRecord(topic, partition, 0, start + i, ms, 0, key, value, [], None, -1, len(value), -1)
            for i, (key, value) in enumerate(pairs)
        ]


def _linked_copy(source: Path, target: Path) -> None:
    """A copy of the lake whose files are hard links (compaction swaps folders, never edits a file),
    with the folders' times kept."""
    for here, _subfolders, filenames in os.walk(source):
        folder = target / Path(here).relative_to(source)
        folder.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            os.link(Path(here) / name, folder / name)
    for here, _subfolders, _filenames in os.walk(source, topdown=False):
        info = os.stat(here)
        os.utime(target / Path(here).relative_to(source), ns=(info.st_atime_ns, info.st_mtime_ns))


def _add(flush: Path, lake: Path) -> None:
    """Put a flush written aside into `lake` (hard links, folders dated as the flush dated them)."""
    for path in sorted(flush.rglob("*.parquet")):
        target = lake / path.relative_to(flush)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
        info = os.stat(path.parent)
        os.utime(target.parent, ns=(info.st_atime_ns, info.st_mtime_ns))


def _files(lake: Path) -> Counter[str]:
    return Counter(
        p.relative_to(lake).parts[0]
        for p in lake.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(lake).parts)
    )


def run(context: BenchContext) -> list[Comparison]:
    loop_s = LOOP_S * context.scale
    flushes = int(loop_s / FLUSH_S)
    small, compacted = context.scratch / "small-files", context.scratch / "compacted"
    epoch_s = time.time() - loop_s - 600  # the loop ran in the past ten minutes and an hour
    started = time.perf_counter()
    loop = _Loop(small, loop_s + (RUNS + 2) * FLUSH_S, epoch_s)
    files = sum(loop.flush(k) for k in range(flushes))
    made_s = time.perf_counter() - started
    _linked_copy(small, compacted)
    extra = []  # the loop's next flushes, one before each timed run of both sides
    for run_no in range(RUNS):
        loop.lake = context.scratch / "next-flushes" / str(run_no)
        loop.flush(flushes + run_no)
        extra.append(loop.lake)
    end_s = epoch_s + loop_s
    compactor = BackgroundCompactor(compacted, clock=lambda: end_s - DEFAULT_INTERVAL_S)
    began = time.perf_counter()
    round_done = compactor.run_once()
    compact_s = time.perf_counter() - began
    before, after = _files(small), _files(compacted)
    hours = len({p.parent for p in (small / "clickstream_events").rglob("*.parquet")})
    console.print(
        f"{loop_s / 60:.0f} min of --loop: {flushes} flushes, {files:,} files ({before['clickstream_events']:,} of "
        f"clickstream_events in {hours} hour folders), made in {made_s:.0f} s; the compactor's round merged "
        f"{len(round_done.compacted)} partitions in {compact_s:.1f} s, left {round_done.open_partitions} open: "
        f"{sum(after.values()):,} files ({after['clickstream_events']:,} of clickstream_events)"
    )
    query = named.load_all()["top_pages_per_hour"]
    params = query.bind({})
    times: dict[str, list[float]] = {"small": [], "compacted": []}
    answers: dict[str, Any] = {}
    limits = Limits(timeout_s=600)
    with Engine(small, limits) as on_small, Engine(compacted, limits) as on_compacted:
        for flush in extra:
            for side, engine, lake in (("small", on_small, small), ("compacted", on_compacted, compacted)):
                _add(flush, lake)
                began = time.perf_counter()
                result = engine.run(query.sql, params)
                times[side].append(time.perf_counter() - began)
                answers[side] = result.table.to_pylist()
    small_s, compacted_s = statistics.median(times["small"]), statistics.median(times["compacted"])
    same = answers["small"] == answers["compacted"]
    console.print(
        f"top_pages_per_hour: small files {small_s:.3f} s, compacted {compacted_s:.3f} s "
        f"(median of {RUNS}, each after a new flush; ratio {compacted_s / small_s:.2f}; identical answers: {same})"
    )
    return [
        Comparison(
            "compaction",
            "top_pages_per_hour after an hour of --loop, background compaction",
            "s",
            compacted_s,
            small_s,
            "the same lake without compaction",
            higher_is_better=False,
            goal=GOAL,
            notes=(
                f"{loop_s / 60:.0f} min of demo --loop at 50x: {sum(before.values()):,} files -> "
                f"{sum(after.values()):,} ({before['clickstream_events']:,} -> {after['clickstream_events']:,} "
                f"of clickstream_events, {hours} hours); median of {RUNS}, a new flush before each"
                + ("" if same else "; ANSWERS DIFFER")
            ),
        )
    ]
