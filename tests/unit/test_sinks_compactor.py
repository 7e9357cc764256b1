"""The background compactor's closed-partition rule, with an injected clock and folder times set
by hand: exactly the partitions no record is expected in any more are compacted."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from core.lake import NULL_PARTITION, data_file_name
from sinks.compactor import BackgroundCompactor, ClosedRule, lake_datasets, partition_span, scan_partitions

ROWS_PER_FILE = 10
RULE = ClosedRule(lateness_s=900, quiet_s=120)


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _partition(lake: Path, relative: str, files: int, modified_s: float, dataset: str = "ds") -> Path:
    """`files` small files in `<lake>/<dataset>/<relative>`, its folder last changed at `modified_s`."""
    folder = lake / dataset / relative
    for n in range(files):
        ids = [f"{relative}-{n}-{i}" for i in range(ROWS_PER_FILE)]
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"event_id": ids}), folder / data_file_name("t", 0, n * ROWS_PER_FILE))
    os.utime(folder, (modified_s, modified_s))
    return folder


def _closed(lake: Path, now_s: float, rule: ClosedRule = RULE) -> list[str]:
    return [p.partition for p in rule.closed(scan_partitions(lake, "ds"), now_s)]


def test_partition_span_of_an_hour_a_day_and_folders_without_event_time() -> None:
    assert partition_span("dt=2019-01-22/hour=07") == (_at("2019-01-22T07:00"), _at("2019-01-22T08:00"))
    assert partition_span("dt=2019-01-22") == (_at("2019-01-22T00:00"), _at("2019-01-23T00:00"))
    assert partition_span("status=200") is None
    assert partition_span(f"dt={NULL_PARTITION}/hour=07") is None
    assert partition_span("dt=2019-01-22/hour=24") is None
    assert partition_span("dt=yesterday/hour=01") is None


def test_live_stream_closes_hours_past_the_lateness_that_are_quiet(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T04:10")  # event time follows the clock
    _partition(lake, "dt=2019-01-22/hour=00", 3, now - 3600)
    _partition(lake, "dt=2019-01-22/hour=01", 3, now - 60)  # a late event's file a minute ago
    _partition(lake, "dt=2019-01-22/hour=02", 3, now - 600)
    _partition(lake, "dt=2019-01-22/hour=03", 3, now - 600)  # ended 10 min ago: within the lateness
    assert _closed(lake, now) == ["dt=2019-01-22/hour=00", "dt=2019-01-22/hour=02"]
    assert _closed(lake, now + 300) == [
        "dt=2019-01-22/hour=00",
        "dt=2019-01-22/hour=01",
        "dt=2019-01-22/hour=02",
        "dt=2019-01-22/hour=03",
    ]


def test_event_time_ahead_of_the_clock_closes_by_the_datasets_frontier(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T00:30")  # a looping replay at 50x has run five hours ahead of the clock
    for hour in range(6):
        _partition(lake, f"dt=2019-01-22/hour={hour:02d}", 2, now - 1000)
    # event time has reached 05:00 (a file is in hour 05): hours ending by 04:45 are past the lateness
    assert _closed(lake, now) == [f"dt=2019-01-22/hour={h:02d}" for h in range(4)]


def test_old_events_still_being_written_stay_open_by_the_quiet_rule(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2026-11-30T18:00")  # years after the events: the event-time rule passes every hour
    _partition(lake, "dt=2019-01-22/hour=00", 2, now - 121)
    _partition(lake, "dt=2019-01-22/hour=01", 2, now - 119)
    _partition(lake, "dt=2019-01-22/hour=02", 2, now - 5)
    assert _closed(lake, now) == ["dt=2019-01-22/hour=00"]


def test_folders_without_event_time_close_by_the_quiet_rule_alone(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T00:10")
    _partition(lake, "status=200", 2, now - 300)
    _partition(lake, "status=404", 2, now - 30)
    _partition(lake, f"dt={NULL_PARTITION}/hour={NULL_PARTITION}", 2, now - 300)
    _partition(lake, "dt=2019-01-22/hour=00", 2, now - 300)  # the current hour: open
    assert _closed(lake, now) == [f"dt={NULL_PARTITION}/hour={NULL_PARTITION}", "status=200"]


def test_a_round_compacts_exactly_the_closed_partitions_with_their_rows(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T04:10")
    _partition(lake, "dt=2019-01-22/hour=00", 4, now - 3600)
    _partition(lake, "dt=2019-01-22/hour=01", 1, now - 3600)  # closed, but one file: nothing to merge
    _partition(lake, "dt=2019-01-22/hour=02", 5, now - 3600)
    _partition(lake, "dt=2019-01-22/hour=03", 3, now - 10)
    _partition(lake, "dt=2019-01-22/hour=00", 2, now - 3600, dataset="other")
    rounds = []
    compactor = BackgroundCompactor(lake, ["ds"], rule=RULE, clock=lambda: now, on_round=rounds.append)
    done = compactor.run_once()
    assert [(d, c.partition, c.files_before, c.files_after, c.rows) for d, c in done.compacted] == [
        ("ds", "dt=2019-01-22/hour=00", 4, 1, 4 * ROWS_PER_FILE),
        ("ds", "dt=2019-01-22/hour=02", 5, 1, 5 * ROWS_PER_FILE),
    ]
    assert (done.open_partitions, done.failed, rounds) == (1, [], [done])
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{lake}/ds/**/*.parquet')"
        ).fetchone()
    assert rows == (13 * ROWS_PER_FILE, 13 * ROWS_PER_FILE)
    assert len(list((lake / "other").rglob("*.parquet"))) == 2  # not a dataset it was given
    assert compactor.run_once().compacted == []


def test_every_dataset_when_none_is_named_and_a_bad_partition_is_tried_again(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T04:10")
    _partition(lake, "dt=2019-01-22/hour=00", 2, now - 3600, dataset="alpha")
    bad = _partition(lake, "dt=2019-01-22/hour=00", 2, now - 3600, dataset="beta")
    (bad / "zz.parquet").write_bytes(b"PAR1 not really PAR1")
    os.utime(bad, (now - 3600, now - 3600))
    (lake / "_errors" / "alpha").mkdir(parents=True)
    assert lake_datasets(lake) == ["alpha", "beta"]
    done = BackgroundCompactor(lake, rule=RULE, clock=lambda: now).run_once()
    assert [(d, c.partition) for d, c in done.compacted] == [("alpha", "dt=2019-01-22/hour=00")]
    assert len(done.failed) == 1 and done.failed[0].startswith("beta/dt=2019-01-22/hour=00: ")
    assert len(list(bad.iterdir())) == 3  # left as it was


def test_the_thread_runs_rounds_until_stopped(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T04:10")
    _partition(lake, "dt=2019-01-22/hour=00", 3, now - 3600)
    three = threading.Event()
    compactor = BackgroundCompactor(
        lake,
        ["ds"],
        interval_s=0.01,
        rule=RULE,
        clock=lambda: now,
        on_round=lambda _: compactor.rounds >= 3 and three.set(),
    )
    with compactor:
        assert three.wait(30), "the compactor did not run three rounds in 30 s"
    assert compactor.error is None
    assert len(list((lake / "ds").rglob("*.parquet"))) == 1


def test_without_allowances_every_hour_before_the_newest_closes_but_not_the_newest(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    now = _at("2019-01-22T00:30")  # the clock lags: event time has reached hour 01
    _partition(lake, "dt=2019-01-22/hour=00", 2, now)
    _partition(lake, "dt=2019-01-22/hour=01", 2, now)
    assert _closed(lake, now, ClosedRule(lateness_s=0, quiet_s=0)) == ["dt=2019-01-22/hour=00"]
