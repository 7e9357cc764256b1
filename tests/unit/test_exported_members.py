"""Each role's public surface is its `__all__`, written out here: adding, renaming or removing a
public name fails this test until the list below (and the docs that show the name) change with it.
Modelled on encode/httpx tests/test_exported_members.py, which compares `__all__` with the
package's members; ours import lazily (PEP 562), so each name is resolved instead."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

SURFACES = {
    "core": [
        "CLICKSTREAM_EVENTS", "LATE_EVENTS", "BrokerUnavailable", "ConfigError", "QueryError",
        "RecordError", "SchemaError", "Settings", "SinkWriteError", "TableNotFound", "TidelakeError",
        "TopicSpec", "dlq_topic", "load_settings", "stream_app_group",
    ],
    "producers": [
        "Agent", "Generator", "GeneratorOptions", "Pace", "ReplayOptions", "ReplaySummary", "Replayer",
        "ShardQuota", "StreamClient", "put_records_with_retry",
    ],
    "stream_apps": [
        "Aggregate", "AppSpec", "Counters", "FaustWindows", "FaustWorker", "FlinkScript", "FlinkUnsupported",
        "Outbox", "Progress", "Record", "StreamWorker", "WindowEngine", "WindowSpec", "WorkerOptions",
        "compile_flink_sql", "load_spec", "parse_aggregate", "parse_window", "resolve_spec", "shipped_specs",
        "spec_from_mapping",
    ],
    "sinks": [
        "BackgroundCompactor", "DeliveryStream", "DeliveryStreamConfig", "ParquetOptions", "SinkSummary",
        "load_config_file", "load_shipped", "parse_config", "shipped_names",
    ],
    "queries": [
        "Bill", "Engine", "Limits", "NamedQuery", "QueryResult", "Table", "athena_bill", "discover",
        "load_all",
    ],
}  # fmt: skip
#: What importing a role must not pull in: Kafka clients, Faust, DuckDB, Arrow, pydantic.
HEAVY = ("kafka", "aiokafka", "faust", "mode", "duckdb", "pyarrow", "pydantic")


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_public_surface_is_the_written_list(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == SURFACES[package]
    assert sorted(dir(module)) == sorted(set(dir(module)) | set(SURFACES[package]))


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_every_public_name_resolves_to_an_object_of_that_name(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None, f"{package}.{name}"
        if isinstance(value, type) or callable(value):
            assert value.__name__ == name, f"{package}.{name} is {value!r}"
            assert value.__module__.startswith(f"{package}."), (
                f"{package}.{name} comes from {value.__module__}"
            )
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        module.NotAName  # noqa: B018 - the lookup is the test


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_importing_a_role_does_no_work(package: str) -> None:
    """Lazy: a fresh interpreter that imports the role has loaded none of the heavy libraries."""
    code = f"import sys, {package}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
