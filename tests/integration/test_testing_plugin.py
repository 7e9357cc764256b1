"""The pytest plugin as a user meets it: pytest sessions run through `pytester` in a subprocess, with
only the installed plugin (no tidelake conftest). Most runs share this suite's broker (through
TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, as a user's CI could), so each starts only serve; one run starts
its own local broker, as a user's first session does.

After each run, /proc says whether every process the stack started is gone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.settings import default_cache_home
from tidelake.testing.brokers import BOOTSTRAP_ENV

#: The user's cache (Kafka's jars, the broker's class archive), taken before pytester moves HOME.
CACHE_HOME = default_cache_home()

pytest_plugins = ["pytester"]

PROBE_ENV = "TIDELAKE_PLUGIN_PROBE"

#: Writes what the stack started (PIDs and their command lines) to the probe file, by test name.
CONFTEST = """
import json, os
from pathlib import Path

def record(name, stack, **more):
    path = Path(os.environ["TIDELAKE_PLUGIN_PROBE"])
    seen = json.loads(path.read_text()) if path.exists() else {}
    seen[name] = {
        "endpoint": stack.endpoint_url,
        "pids": {str(p): Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
                 for p in stack.pids if Path(f"/proc/{p}").exists()},  # apps stopped by a reset are gone
        **more,
    }
    path.write_text(json.dumps(seen))
"""

ROLE = "arn:aws:iam::000000000000:role/firehose"

MODULE_A = f'''
import json
import time
from conftest import record

ROLE = "{ROLE}"


def destination(dataset):
    return {{
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::tidelake-lake", "Prefix": dataset + "/",
        "BufferingHints": {{"SizeInMBs": 64, "IntervalInSeconds": 900}},
        "DataFormatConversionConfiguration": {{
            "SchemaConfiguration": {{"RoleARN": ROLE, "DatabaseName": "default", "TableName": dataset}},
            "InputFormatConfiguration": {{"Deserializer": {{"OpenXJsonSerDe": {{}}}}}},
            "OutputFormatConfiguration": {{"Serializer": {{"ParquetSerDe": {{}}}}}},
        }},
    }}


def test_fill_every_service(tidelake_reset, kinesis_client, firehose_client, glue_client, athena_client):
    stack = tidelake_reset
    kinesis_client.create_stream(StreamName="plugin.clicks", ShardCount=1)
    firehose_client.create_delivery_stream(DeliveryStreamName="plugin-orders", ExtendedS3DestinationConfiguration=destination("plugin_orders"))
    records = [{{"Data": json.dumps({{"id": i, "amount": i}}).encode() + b"\\n"}} for i in range(250)]
    assert firehose_client.put_record_batch(DeliveryStreamName="plugin-orders", Records=records)["FailedPutCount"] == 0
    assert stack.wait_delivered("plugin-orders", 250, timeout_s=60) == 250
    glue_client.create_database(DatabaseInput={{"Name": "plugin_db"}})
    glue_client.create_table(DatabaseName="plugin_db", TableInput={{
        "Name": "extra", "StorageDescriptor": {{"Location": "s3://tidelake-lake/plugin_orders/",
        "Columns": [{{"Name": "id", "Type": "bigint"}}], "SerdeInfo": {{"SerializationLibrary":
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}}}}})
    athena_client.create_named_query(Name="q", Database="default", QueryString="SELECT 1")
    qid = athena_client.start_query_execution(QueryString="SELECT count(*) FROM plugin_orders")["QueryExecutionId"]
    deadline = time.monotonic() + 60
    while athena_client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]["State"] != "SUCCEEDED":
        assert time.monotonic() < deadline, athena_client.get_query_execution(QueryExecutionId=qid)
        time.sleep(0.1)
    assert athena_client.get_query_results(QueryExecutionId=qid)["ResultSet"]["Rows"][1] == {{"Data": [{{"VarCharValue": "250"}}]}}
    app = stack.run_app({{"name": "plugin-clicks-1m", "source": "plugin.clicks", "window": "tumbling:60s",
                         "aggregates": ["count"], "time_field": "t", "idle_timeout": "1h"}})
    record("a", stack, app_pid=app.pid)
'''

MODULE_B = """
import pytest
from conftest import record
from tidelake.testing import StackError


def test_reset_leaves_nothing_behind(tidelake_stack, kinesis_client, firehose_client, glue_client, athena_client):
    removed = tidelake_stack.reset()
    assert removed["DeliveryStreams"] == ["plugin-orders"]
    made = {"analytics.plugin-clicks-1m", "analytics.late-events", "firehose.plugin-orders", "plugin.clicks", "plugin.clicks.dlq"}
    assert sorted(removed["KinesisStreams"]) == sorted(made - set(tidelake_stack.foreign_topics))
    assert (removed["GlueTables"], removed["GlueDatabases"]) == (["plugin_db.extra"], ["plugin_db"])
    assert removed["LakeEntries"] == ["_sinks", "plugin_orders"] and removed["NamedQueries"] == 1
    assert list(tidelake_stack.lake.iterdir()) == []
    assert firehose_client.list_delivery_streams()["DeliveryStreamNames"] == []
    assert sorted(set(kinesis_client.list_streams()["StreamNames"]) - set(tidelake_stack.foreign_topics)) == []
    assert [d["Name"] for d in glue_client.get_databases()["DatabaseList"]] == ["default"]
    assert glue_client.get_tables(DatabaseName="default")["TableList"] == []
    assert athena_client.list_named_queries()["NamedQueryIds"] == []
    assert removed["QueryExecutions"] == 1 and athena_client.list_query_executions()["QueryExecutionIds"] == []
    assert tidelake_stack.apps == []
    record("b", tidelake_stack)


def test_wait_delivered_says_what_it_saw(tidelake_reset, firehose_client):
    from test_a import destination
    firehose_client.create_delivery_stream(DeliveryStreamName="plugin-empty", ExtendedS3DestinationConfiguration=destination("plugin_empty"))
    with pytest.raises(StackError) as caught:
        tidelake_reset.wait_delivered("plugin-empty", 3, timeout_s=1)
    print("WAIT_DELIVERED:", caught.value)


def test_flush_of_a_missing_stream_says_so(tidelake_reset):
    with pytest.raises(StackError) as caught:
        tidelake_reset.flush("plugin-nowhere", timeout_s=1)
    print("FLUSH:", caught.value)


def test_wait_windows_closed_says_what_it_saw(tidelake_reset, kinesis_client):
    kinesis_client.create_stream(StreamName="plugin.slow", ShardCount=1)
    app = tidelake_reset.run_app({"name": "plugin-slow", "source": "plugin.slow", "window": "tumbling:60s",
                                  "aggregates": ["count"], "time_field": "t", "idle_timeout": "1h"})
    kinesis_client.put_record(StreamName="plugin.slow", Data=b'{"t": "2026-01-01T00:00:10Z"}', PartitionKey="k")
    with pytest.raises(StackError) as caught:
        tidelake_reset.wait_windows_closed(app, timeout_s=3)
    print("WINDOWS:", caught.value)
    record("b-app", tidelake_reset, app_pid=app.pid)
"""


def _run(pytester: pytest.Pytester, probe: Path, *args: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a=MODULE_A, test_b=MODULE_B)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester.runpytest_subprocess("-s", "-p", "no:randomly", *args, timeout=600)


def _alive(pid: str, cmdline: str) -> bool:
    """Whether the process is still there (the same one: its command line has not changed)."""
    path = Path(f"/proc/{pid}/cmdline")
    try:
        return path.read_bytes().decode(errors="replace") == cmdline
    except OSError:
        return False


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "probe.json"
    monkeypatch.setenv(PROBE_ENV, str(path))
    return path


def test_two_modules_share_one_stack_reset_empties_it_and_waits_say_what_they_saw(
    pytester: pytest.Pytester, probe: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, kafka_bootstrap)
    result = _run(pytester, probe)

    result.assert_outcomes(passed=5)
    seen = json.loads(probe.read_text())
    assert seen["a"]["endpoint"] == seen["b"]["endpoint"] == seen["b-app"]["endpoint"]  # one stack
    out = result.stdout.str()
    assert (
        "WAIT_DELIVERED: 3 records of Firehose stream plugin-empty were not in the lake within 1 s: 0 rows in 0 files under"
        in out
    )
    assert (
        "FLUSH: POST /_tidelake/flush answered 400: ResourceNotFoundException: Firehose stream plugin-nowhere"
        in out
    )
    assert (
        "WINDOWS: stream app plugin-slow did not close its windows within 3 s: wanted 1 events read from plugin.slow"
        in out
    )
    assert "'events_in': 1, 'windows_open': 1" in out
    processes = {pid: cmd for entry in seen.values() for pid, cmd in entry["pids"].items()}
    assert len(processes) == 3  # serve and two stream apps; the broker was the suite's
    assert [pid for pid, cmd in processes.items() if _alive(pid, cmd)] == []


def test_a_session_with_its_own_broker_leaves_no_process(
    pytester: pytest.Pytester, probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(CACHE_HOME))  # the jars are cached there, as for a user
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_own="""
        from conftest import record

        def test_the_stack_runs(tidelake_stack, kinesis_client):
            kinesis_client.create_stream(StreamName="own.stream", ShardCount=2)
            assert kinesis_client.list_streams()["StreamNames"] == ["own.stream"]
            assert tidelake_stack.broker_label.startswith("local Kafka")
            record("own", tidelake_stack)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)

    result.assert_outcomes(passed=1)
    processes = json.loads(probe.read_text())["own"]["pids"]
    assert len(processes) == 2  # serve and the broker's JVM
    assert any("kafka.Kafka" in cmd for cmd in processes.values())
    assert [pid for pid, cmd in processes.items() if _alive(pid, cmd)] == []


def test_the_fixtures_cost_nothing_when_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_plain(request):
            assert request.config.pluginmanager.hasplugin("tidelake")  # loaded, by its entry point
            assert [m for m in ("tidelake.testing.stack", "boto3", "kafka", "duckdb") if m in sys.modules] == []
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
