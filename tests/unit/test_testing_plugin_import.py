"""The plugin pytest loads in every session stays cheap and harmless when its fixtures are unused,
and the pieces of the stack that need no broker behave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_apps.catalog import resolve_spec
from tidelake.testing.apps import spec_file
from tidelake.testing.brokers import BOOTSTRAP_ENV, _java_tool_options, _jvm_options, choose_kafka
from tidelake.testing.stack import StackError, TidelakeStack


def test_loading_the_plugin_imports_no_client_library():
    code = (
        "import sys, tidelake.testing.plugin, tidelake.testing; "
        "print(sorted(m for m in ('boto3', 'kafka', 'duckdb', 'pyarrow', 'testcontainers', 'core') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_external_broker_is_chosen_without_starting_anything(monkeypatch, tmp_path):
    monkeypatch.setenv(BOOTSTRAP_ENV, "10.0.0.9:9092")
    choice = choose_kafka(tmp_path, fast_start=True)
    assert (choice.address, choice.owned, choice.label) == (
        "10.0.0.9:9092",
        False,
        "external broker at 10.0.0.9:9092",
    )
    assert list(tmp_path.iterdir()) == []


def test_fast_start_dumps_a_class_archive_once_then_reads_it(tmp_path):
    archive = tmp_path / "cache" / "kafka-4.1.2-abc.jsa"
    data = tmp_path / "kafka"
    assert _jvm_options(archive, data) == [
        "-XX:TieredStopAtLevel=1",
        f"-XX:ArchiveClassesAtExit={data / 'kafka-4.1.2-abc.jsa'}",
    ]
    archive.parent.mkdir()
    archive.write_bytes(b"jsa")
    assert _jvm_options(archive, data) == ["-XX:TieredStopAtLevel=1", f"-XX:SharedArchiveFile={archive}"]


def test_java_tool_options_are_added_for_the_block_only(monkeypatch):
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Dmine=1")
    with _java_tool_options(["-XX:TieredStopAtLevel=1"]):
        assert os.environ["JAVA_TOOL_OPTIONS"] == "-Dmine=1 -XX:TieredStopAtLevel=1"
    assert os.environ["JAVA_TOOL_OPTIONS"] == "-Dmine=1"
    monkeypatch.delenv("JAVA_TOOL_OPTIONS")
    with _java_tool_options(["-Xshare:auto"]):
        assert os.environ["JAVA_TOOL_OPTIONS"] == "-Xshare:auto"
    assert "JAVA_TOOL_OPTIONS" not in os.environ


def _stack(tmp_path: Path) -> TidelakeStack:
    return TidelakeStack("http://127.0.0.1:1", "127.0.0.1:2", tmp_path / "lake", tmp_path / "state")


def test_an_app_spec_given_as_a_dict_is_written_as_toml_the_app_reads(tmp_path):
    spec = {
        "name": "orders-1m",
        "source": "orders",
        "key_field": "country",
        "window": "tumbling:60s",
        "aggregates": ["count", "sum:amount"],
        "filters": ["status != test"],
        "idle_timeout": "1s",
    }
    path = spec_file(_stack(tmp_path), spec)
    assert path == tmp_path / "state" / "specs" / "orders-1m.toml"
    loaded = resolve_spec(str(path))
    assert (loaded.name, loaded.source, loaded.key_field, loaded.sink_topic) == (
        "orders-1m", "orders", "country", "analytics.orders-1m",
    )  # fmt: skip
    assert [a.output_name for a in loaded.aggregates] == ["count", "sum_amount"]


def test_an_app_spec_without_a_name_is_refused_with_the_spec(tmp_path):
    with pytest.raises(StackError, match="needs a name"):
        spec_file(_stack(tmp_path), {"window": "tumbling:60s"})


def test_clients_and_env_point_at_the_stack(tmp_path):
    stack = _stack(tmp_path)
    assert stack.client("kinesis").meta.endpoint_url == "http://127.0.0.1:1"
    assert stack.client("s3").meta.region_name == "us-east-1"
    assert stack.env() == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:2",
    }


def test_a_kda_sql_program_is_told_from_a_spec():
    from tidelake.testing.apps import is_sql

    sql = 'CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM 1 FROM "S"'
    assert [is_sql(s) for s in (sql, "apps/x.sql", Path("x.sql"), "page-views-1m", Path("x.toml"), {})] == [
        True, True, True, False, False, False,
    ]  # fmt: skip
