"""Parquet files (atomic, both engines), manifests and delivery-stream configs."""

import datetime as dt
import os
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import ConfigError, SinkWriteError
from core.lake import data_file_name, parse_data_file_name
from sinks.config import load_config_file, load_shipped, parse_config, shipped_names
from sinks.manifest import Manifest, ManifestStore
from sinks.schemas import DatasetSchema
from sinks.switch_interval import SWITCH_INTERVAL_S, _SwitchInterval
from sinks.writer import sync_folders, write_parquet


def _table() -> pa.Table:
    moments = [
        dt.datetime(2019, 1, 22, 0, 26, 16, 123456, tzinfo=dt.UTC),
        dt.datetime(2019, 1, 22, 1, 0, tzinfo=dt.UTC),
    ]
    return pa.table(
        {
            "event_id": ["a", "b"],
            "event_time": pa.array(moments, pa.timestamp("us", "UTC")),
            "status": pa.array([200, None], pa.int32()),
            "is_bot": [False, True],
        }
    )


@pytest.mark.parametrize("compression", ["snappy", "zstd", "gzip", "none"])
def test_both_engines_write_files_duckdb_reads_to_the_same_rows(tmp_path: Path, compression: str) -> None:
    a = tmp_path / "a" / "x.parquet"
    b = tmp_path / "b" / "x.parquet"
    write_parquet(_table(), a, engine="pyarrow", compression=compression)
    write_parquet(_table(), b, engine="fastparquet", compression=compression)
    query = "SELECT event_id, event_time, status, is_bot FROM read_parquet(?) ORDER BY event_id"
    rows_a = duckdb.execute(query, [str(a)]).fetchall()
    rows_b = duckdb.execute(query, [str(b)]).fetchall()
    assert rows_a == rows_b
    assert len(rows_a) == 2
    assert sorted(os.listdir(a.parent)) == ["x.parquet"]  # no temp file left


def test_row_group_size_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    write_parquet(pa.table({"n": list(range(10))}), path, row_group_records=3)
    assert pq.ParquetFile(path).num_row_groups == 4


def test_a_failed_write_leaves_no_file_and_says_nothing_was_committed(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    with pytest.raises(SinkWriteError, match="nothing was committed"):
        write_parquet(_table(), blocked / "dt=x" / "f.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


def test_file_names_are_deterministic_and_parse_back() -> None:
    name = data_file_name("analytics.page-views-1m", 3, 1234)
    assert name == "analytics.page-views-1m+3+00000000000000001234.parquet"
    assert parse_data_file_name(name) == ("analytics.page-views-1m", 3, 1234)
    assert parse_data_file_name(".x.parquet.tmp") is None


def test_manifest_round_trip_and_delete(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path, "s")
    manifest = Manifest("t", 2, 10, 19, ["d/a.parquet"])
    store.write(manifest)
    assert store.read("t", 2) == manifest
    assert store.path("t", 2) == tmp_path / "_sinks" / "s" / "t+2.json"
    store.delete("t", 2)
    assert store.read("t", 2) is None


def test_shipped_configs_load_and_name_the_demo_streams() -> None:
    assert shipped_names() == ["analytics", "clickstream-events", "dead-letters", "late-events"]
    events = load_shipped("clickstream-events")
    assert (events.topics, events.dataset, events.schema_) == (
        ["clickstream.events"],
        "clickstream_events",
        "clickstream",
    )
    analytics = load_shipped("analytics")
    assert analytics.dataset_of("analytics.page-views-1m") == "page_views_1m"
    assert analytics.time_field == "window_start"
    import re

    pattern = re.compile(analytics.topic_pattern or "")
    assert pattern.match("analytics.page-views-1m") and not pattern.match("analytics.late-events")
    assert load_shipped("dead-letters").dataset_of("clickstream.events.dlq") == "clickstream_events"


def test_unknown_shipped_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of analytics, clickstream-events"):
        load_shipped("nope")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"name": "x"}, "either topics"),
        ({"name": "x", "topics": ["t"], "topic_pattern": "t"}, "either topics"),
        ({"name": "x", "topics": ["t"], "schema": "avro"}, "schema 'avro'"),
        ({"name": "x", "topics": ["t"], "parquet": {"compression": "lz77"}}, "compression"),
        ({"name": "x", "topics": ["t"], "prefix": "!{bad:x}/"}, "unknown namespace"),
        ({"name": "x", "topics": ["t"], "buffer": {"interval_s": -1}}, "buffer.interval_s"),
        ({"name": "x", "topics": ["t"], "dataset": "../etc"}, "dataset"),
        ({"name": "x", "topics": ["t"], "colour": "red"}, "colour"),
    ],
)
def test_bad_configs_say_which_field_is_wrong(data: dict, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_config(data, "cfg.toml")


def test_config_file_with_declared_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "views"\ntopics = ["analytics.views"]\ntime_field = "window_start"\n'
        '[[fields]]\nname = "page"\ntype = "string"\nnullable = false\n'
        '[[fields]]\nname = "window_start"\ntype = "timestamp[us, UTC]"\n'
        '[[fields]]\nname = "count"\ntype = "int64"\n'
    )
    config = load_config_file(path)
    schema = config.new_schema()
    assert isinstance(schema, DatasetSchema) and schema.declared
    assert [(f.name, str(f.type), f.nullable) for f in schema.fields] == [
        ("page", "string", False),
        ("window_start", "timestamp[us, tz=UTC]", True),
        ("count", "int64", True),
    ]
    with pytest.raises(ConfigError, match="no delivery-stream config at"):
        load_config_file(tmp_path / "missing.toml")


def test_write_reports_the_size_of_the_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "ds" / "dt=x" / "f.parquet"
    size = write_parquet(pa.table({"n": list(range(1000))}), path, sync_folder=False)
    assert size == path.stat().st_size
    assert [p.name for p in path.parent.iterdir()] == ["f.parquet"]  # no temp file left behind


def test_a_folder_that_cannot_be_synced_is_a_write_error(tmp_path: Path) -> None:
    with pytest.raises(SinkWriteError, match=r"could not sync the folder .*nothing was committed"):
        sync_folders({tmp_path / "missing"})


def test_switch_interval_is_lowered_while_streams_run_and_restored_after_the_last() -> None:
    before = sys.getswitchinterval()
    guard = _SwitchInterval()
    with guard:
        with guard:  # a second stream in the same process
            assert sys.getswitchinterval() == pytest.approx(min(before, SWITCH_INTERVAL_S))
        assert sys.getswitchinterval() == pytest.approx(min(before, SWITCH_INTERVAL_S))
    assert sys.getswitchinterval() == before
