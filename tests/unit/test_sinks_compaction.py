"""Compaction merges a partition's files into one and readers never see duplicates or gaps."""

import json
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from core.errors import ConfigError
from core.lake import data_file_name
from sinks.compaction import compact
from sinks.writer import write_parquet

FILES_PER_HOUR = 6
ROWS_PER_FILE = 50


def _lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    n = 0
    for hour in ("00", "01", "02"):
        for _ in range(FILES_PER_HOUR):
            ids = [f"h{hour}-{n + i}" for i in range(ROWS_PER_FILE)]
            table = pa.table({"event_id": ids, "n": list(range(n, n + ROWS_PER_FILE))})
            write_parquet(table, lake / "ds" / "dt=2019-01-22" / f"hour={hour}" / data_file_name("t", 0, n))
            n += ROWS_PER_FILE
    return lake


def _count(lake: Path) -> tuple[int, int]:
    with duckdb.connect() as con:
        row = con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{lake}/ds/**/*.parquet')"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_each_partition_becomes_one_file_with_the_same_rows(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    total = 3 * FILES_PER_HOUR * ROWS_PER_FILE
    done = compact(lake, "ds")
    assert [(c.partition, c.files_before, c.files_after, c.rows) for c in done] == [
        (f"dt=2019-01-22/hour={h}", FILES_PER_HOUR, 1, FILES_PER_HOUR * ROWS_PER_FILE)
        for h in ("00", "01", "02")
    ]
    assert _count(lake) == (total, total)
    assert not [p for p in (lake / "ds").rglob(".*")]  # no staging folder left behind
    assert compact(lake, "ds") == []  # nothing left to merge


def test_only_the_chosen_partitions_and_never_files_of_an_unfinished_flush(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    hour = lake / "ds" / "dt=2019-01-22" / "hour=01"
    in_flight = sorted(hour.iterdir())[0]
    state = lake / "_sinks" / "s"
    state.mkdir(parents=True)
    (state / "t+0.json").write_text(json.dumps({"files": [str(in_flight.relative_to(lake))]}))
    done = compact(lake, "ds", ["dt=2019-01-22/hour=01"])
    assert [(c.partition, c.files_before, c.files_after) for c in done] == [
        ("dt=2019-01-22/hour=01", FILES_PER_HOUR, 2)
    ]
    assert in_flight.exists()
    assert len(list((lake / "ds" / "dt=2019-01-22" / "hour=00").iterdir())) == FILES_PER_HOUR


def test_readers_during_compaction_see_every_row_exactly_once(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    total = 3 * FILES_PER_HOUR * ROWS_PER_FILE
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(_count(lake))
            except duckdb.IOException:
                continue  # a file listed before the swap and opened after it: the query failed, no wrong rows

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        compact(lake, "ds")
    finally:
        stop.set()
        reader.join(30)
    seen.append(_count(lake))
    assert set(seen) == {(total, total)}


def test_unknown_dataset_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no dataset 'nope'"):
        compact(tmp_path, "nope")


def test_two_compactions_of_one_dataset_at_once_never_duplicate_rows(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    total = 3 * FILES_PER_HOUR * ROWS_PER_FILE
    done: list[int] = []
    racers = [threading.Thread(target=lambda: done.append(len(compact(lake, "ds")))) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert sorted(done) == [0, 3]  # one merged the three hours; the other, after it, found nothing to merge
    assert _count(lake) == (total, total)
