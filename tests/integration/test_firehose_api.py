"""Firehose's API against tidelake's delivery streams, with boto3, the AWS CLI and Athena's API.

The server is the composed AWS endpoint (`tidelake.aws_endpoint`) with the Firehose action table
and the real query app (queries.api) behind it, on the session's real Kafka broker and a lake of
its own; the crash drill runs `tidelake serve` itself and kills it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from kafka import KafkaProducer

from core.admin import describe_topics
from core.settings import Settings, load_settings
from core.status_board import read_board
from queries.api import create_app
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.service import QueryService
from sinks.firehose_api import TARGET_PREFIX, FirehoseService, direct_put_topic, firehose_actions
from sinks.firehose_config import sink_name
from sinks.firehose_processing import ACCEPTED_SHAPE
from tests.aws_endpoints import (
    AWS_CLI,
    aws_cli_env,
    aws_client,
    endpoint_in_thread,
    free_port,
    stand_in_query_app,
)
from tidelake.aws_endpoint import aws_endpoint

ROLE = "arn:aws:iam::000000000000:role/firehose"
BUCKET = "arn:aws:s3:::lake"
WAIT_S = 90.0


def _settings(bootstrap: str, root: Path) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": bootstrap},
        lake={"root": root / "lake"},
        runtime={"state_dir": root / "run"},
    )


class Server:
    def __init__(self, url: str, settings: Settings, service: FirehoseService) -> None:
        self.url, self.settings, self.service = url, settings, service

    @property
    def lake(self) -> Path:
        return self.settings.lake.root


@pytest.fixture(scope="module")
def server(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("firehose")
    settings = _settings(kafka_bootstrap, root)
    settings.lake.root.mkdir(parents=True)
    service = FirehoseService(settings, root / "run" / "firehose", restart_backoff_s=(0.2, 2.0))
    service.start()
    with Engine(settings.lake.root, Limits(timeout_s=60)) as engine:
        queries = QueryService(engine, ResultStore(root / "results"), 1)
        app = aws_endpoint(create_app(queries), {TARGET_PREFIX: firehose_actions(service)})
        try:
            with endpoint_in_thread(app) as url:
                yield Server(url, settings, service)
        finally:
            service.close()
            queries.close()


@pytest.fixture
def firehose(server: Server):
    return aws_client("firehose", server.url)


@pytest.fixture
def athena(server: Server):
    return aws_client("athena", server.url, attempts=3)


def _name(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:8]}"


def _destination(
    dataset: str,
    *,
    interval_s: int = 1,
    layout: str = "customer=!{partitionKeyFromQuery:customer_id}/",
    query: str | None = "{customer_id:.customer_id}",
    table: str | None = None,
    compression: str = "SNAPPY",
) -> dict:
    destination: dict = {
        "RoleARN": ROLE,
        "BucketARN": BUCKET,
        "Prefix": f"{dataset}/{layout}",
        "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": interval_s},
        "DataFormatConversionConfiguration": {
            "SchemaConfiguration": {
                "RoleARN": ROLE,
                "DatabaseName": "default",
                "TableName": table or dataset,
            },
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": compression}}},
        },
    }
    if query is not None:
        destination["DynamicPartitioningConfiguration"] = {"Enabled": True}
        destination["ProcessingConfiguration"] = {
            "Enabled": True,
            "Processors": [
                {
                    "Type": "MetadataExtraction",
                    "Parameters": [
                        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": query},
                        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                    ],
                }
            ],
        }
    return destination


def _wait(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} (waited {timeout_s} s)")


def _status(firehose, name: str) -> str:
    return firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
        "DeliveryStreamStatus"
    ]


def _deleted(firehose, name: str) -> bool:
    """True once DescribeDeliveryStream no longer finds `name`."""
    try:
        firehose.describe_delivery_stream(DeliveryStreamName=name)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


def _create(firehose, name: str, destination: dict, **extra) -> None:
    answer = firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination, **extra
    )
    assert answer["DeliveryStreamARN"] == f"arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}"
    _wait(lambda: _status(firehose, name) == "ACTIVE", f"{name} did not become ACTIVE")


def _put(firehose, name: str, values: list[bytes], batch: int = 100) -> list[str]:
    ids = []
    for start in range(0, len(values), batch):
        answer = firehose.put_record_batch(
            DeliveryStreamName=name, Records=[{"Data": v} for v in values[start : start + batch]]
        )
        assert answer["FailedPutCount"] == 0
        assert answer["Encrypted"] is False
        ids.extend(r["RecordId"] for r in answer["RequestResponses"])
    return ids


def _athena(athena, sql: str) -> list[list[str | None]]:
    query_id = athena.start_query_execution(QueryString=sql)["QueryExecutionId"]
    deadline = time.monotonic() + 60
    while True:
        state = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if state["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        assert time.monotonic() < deadline, "the query did not finish"
        time.sleep(0.05)
    assert state["State"] == "SUCCEEDED", state
    rows = athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]["Rows"]
    return [[d.get("VarCharValue") for d in r["Data"]] for r in rows[1:]]


def _rows(lake: Path, dataset: str, select: str = "count(*)") -> tuple:
    files = [p for p in (lake / dataset).rglob("*.parquet") if not p.name.startswith((".", "_"))]
    if not files:
        return (0,)
    with duckdb.connect() as con:
        return con.execute(f"SELECT {select} FROM read_parquet('{lake / dataset}/**/*.parquet')").fetchone()


def _errors(lake: Path, dataset: str) -> list[tuple]:
    folder = lake / "_errors" / dataset
    if not any(folder.rglob("*.parquet")):
        return []
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT error_type, error_message, raw_data FROM read_parquet('{folder}/**/*.parquet', "
            "hive_partitioning = false) ORDER BY raw_data"
        ).fetchall()


def _order(i: int, customers: int = 5) -> bytes:
    return json.dumps({"order_id": f"o{i:05d}", "customer_id": f"c{i % customers}", "amount": i}).encode()


def _declare_table(lake: Path, table: str) -> None:
    """A lake dataset that declares the columns (tidelake's catalog is the lake's Parquet footers)."""
    folder = lake / table
    folder.mkdir(parents=True)
    schema = pa.schema([("order_id", pa.string()), ("customer_id", pa.string()), ("amount", pa.int64())])
    pq.write_table(schema.empty_table(), folder / "schema.parquet")


# -- the scenario --------------------------------------------------------------------------


def test_put_record_batch_delivers_partitions_and_errors_that_reconcile(
    server: Server, firehose, athena
) -> None:
    dataset, table = _name("orders"), _name("orders_schema")
    _declare_table(server.lake, table)
    name = _name("Orders-Direct")
    _create(firehose, name, _destination(dataset, table=table), DeliveryStreamType="DirectPut")
    good = [_order(i) for i in range(300)]
    bad = [b"not json at all", b'{"order_id": "bad1", "customer_id": "c1", "amount": "lots"}', b"[1, 2]"]
    ids = _put(firehose, name, good[:150] + bad + good[150:])
    assert len(ids) == len(set(ids)) == 303
    topic = direct_put_topic(name)
    assert all(rid.startswith(f"{topic}:") for rid in ids)

    _wait(
        lambda: _rows(server.lake, dataset)[0] == 300 and len(_errors(server.lake, dataset)) == 3, "delivery"
    )
    by_customer = _athena(
        athena, f"SELECT customer, count(*), sum(amount) FROM {dataset} GROUP BY 1 ORDER BY 1"
    )
    assert by_customer == [[f"c{c}", "60", str(sum(i for i in range(300) if i % 5 == c))] for c in range(5)]
    assert sorted(p.name for p in (server.lake / dataset).iterdir()) == [f"customer=c{c}" for c in range(5)]

    errors = _errors(server.lake, dataset)
    assert [(e[0], e[2]) for e in errors] == [  # ordered by raw_data: "[" < "n" < "{"
        ("format-conversion-failed", "[1, 2]"),
        ("format-conversion-failed", "not json at all"),
        ("format-conversion-failed", bad[1].decode()),
    ]
    reasons = {e[2]: e[1] for e in errors}
    assert reasons[bad[1].decode()].startswith("field 'amount': expected int64, got string \"lots\"")
    assert reasons["[1, 2]"] == "expected one JSON object, got array"
    assert reasons["not json at all"].startswith("invalid JSON")
    assert {
        p.relative_to(server.lake / "_errors" / dataset).parts[0]
        for p in (server.lake / "_errors" / dataset).rglob("*.parquet")
    } == {"format-conversion-failed"}

    def board() -> dict:
        entries = [
            p
            for p in read_board(server.settings.runtime.state_dir)
            if p.kind == "sink" and p.name == sink_name(name)
        ]
        return entries[0].metrics if entries else {}

    _wait(lambda: board().get("records_in") == 303 and board().get("rows_written") == 300, "the status board")
    metrics = board()
    assert (metrics["records_in"], metrics["rows_written"], metrics["errors"], metrics["buffered"]) == (
        303,
        300,
        3,
        0,
    )
    assert metrics["records_in"] == metrics["rows_written"] + metrics["errors"]


def test_a_zero_second_buffer_and_a_nested_jq_key(server: Server, firehose, athena) -> None:
    dataset = _name("regions")
    name = _name("regions")
    destination = _destination(
        dataset,
        interval_s=0,
        layout="region=!{partitionKeyFromQuery:region}/",
        query="{region: .address.region}",
    )
    _create(firehose, name, destination)
    described = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    hints = described["Destinations"][0]["ExtendedS3DestinationDescription"]["BufferingHints"]
    assert hints == {"SizeInMBs": 64, "IntervalInSeconds": 0}
    values = [
        json.dumps(
            {"order_id": f"r{i}", "address": {"region": ["eu", "us", "ap"][i % 3]}, "amount": i}
        ).encode()
        for i in range(90)
    ]
    values.append(json.dumps({"order_id": "nowhere", "amount": 1}).encode())
    for value in values:  # one record a call: each is its own flush with a 0 s interval
        assert firehose.put_record(DeliveryStreamName=name, Record={"Data": value})["Encrypted"] is False
    _wait(lambda: _rows(server.lake, dataset)[0] == 91, "delivery")
    rows = _athena(athena, f"SELECT region, count(*) FROM {dataset} GROUP BY 1 ORDER BY 1")
    # the record without a region is in region=__HIVE_DEFAULT_PARTITION__/, which Athena reads as NULL
    assert rows == [["ap", "30"], ["eu", "30"], ["us", "30"], [None, "1"]]
    assert (server.lake / dataset / "region=__HIVE_DEFAULT_PARTITION__").is_dir()


def test_kinesis_stream_as_source_reads_from_its_creation(
    server: Server, firehose, make_topic, kafka_bootstrap
) -> None:
    topic = make_topic(partitions=2)
    dataset = _name("kinesis")
    with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        for i in range(5):  # before the delivery stream: Firehose starts at its creation
            producer.send(topic, _order(1000 + i))
        producer.flush()
    name = _name("from-kinesis")
    source = {"KinesisStreamARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/{topic}", "RoleARN": ROLE}
    _create(
        firehose,
        name,
        _destination(dataset, query=None, layout="dt=!{timestamp:yyyy-MM-dd}/"),
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration=source,
        # tidelake's extension: the columns declared inline (no lake table of that name exists)
        Tags=[{"Key": "tidelake:schema", "Value": "order_id=string customer_id=string amount=int64"}],
    )
    described = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert described["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert (
        described["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"]
        == source["KinesisStreamARN"]
    )
    with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        for i in range(40):
            producer.send(topic, _order(i))
        producer.send(topic, b'{"order_id": "x", "amount": "much"}')
        producer.flush()
    _wait(lambda: _rows(server.lake, dataset)[0] == 40 and _errors(server.lake, dataset), "delivery")
    [(error_type, message, _raw)] = _errors(server.lake, dataset)
    assert error_type == "format-conversion-failed"
    assert message.startswith("field 'amount': expected int64, got string \"much\"")
    time.sleep(1.5)  # one more interval: nothing else arrives
    assert _rows(server.lake, dataset, "count(*), count(DISTINCT order_id), min(order_id), max(order_id)") == (
        40, 40, "o00000", "o00039"
    )  # fmt: skip
    with pytest.raises(ClientError) as refused:
        firehose.put_record(DeliveryStreamName=name, Record={"Data": b"{}"})
    assert refused.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert "KinesisStreamAsSource" in refused.value.response["Error"]["Message"]


# -- limits and errors -----------------------------------------------------------------------------


def _code(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_limits_answer_with_aws_error_codes(server: Server, firehose) -> None:
    loose = aws_client("firehose", server.url, validate=False)
    name, dataset = _name("limits"), _name("limits")
    _create(firehose, name, _destination(dataset, query=None, layout=""))
    code, message = _code(
        lambda: loose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": b"{}"}] * 501)
    )
    assert (code, message) == (
        "ValidationException",
        "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to 500",
    )
    big = [{"Data": b"{}"}, {"Data": b"x" * 1_024_001}]
    code, message = _code(lambda: firehose.put_record_batch(DeliveryStreamName=name, Records=big))
    assert code == "ValidationException"
    assert (
        "at 'records.2.member.data' failed to satisfy constraint: Member must have length less than or equal to 1024000"
        in message
    )
    code, message = _code(
        lambda: firehose.put_record(DeliveryStreamName=name, Record={"Data": b"x" * 1_024_001})
    )
    assert code == "ValidationException" and "'record.data'" in message
    five_mib = [{"Data": b"x" * 1_000_000}] * 5
    assert _code(lambda: firehose.put_record_batch(DeliveryStreamName=name, Records=five_mib)) == (
        "InvalidArgumentException", "Records size exceeds 4 MB limit"
    )  # fmt: skip
    at_limit = firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": b"x" * 1_024_000}] * 4)
    assert at_limit["FailedPutCount"] == 0 and len(at_limit["RequestResponses"]) == 4
    assert (
        _code(lambda: loose.put_record_batch(DeliveryStreamName=name, Records=[]))[0] == "ValidationException"
    )
    assert _code(lambda: firehose.put_record(DeliveryStreamName="nope", Record={"Data": b"{}"})) == (
        "ResourceNotFoundException", "Firehose stream nope under account 000000000000 not found."
    )  # fmt: skip
    assert (
        _code(lambda: firehose.describe_delivery_stream(DeliveryStreamName="nope"))[0]
        == "ResourceNotFoundException"
    )
    destination = _destination(_name("other"), query=None, layout="")
    assert _code(lambda: firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination))[0] == "ResourceInUseException"  # fmt: skip

    def refused(change: Callable[[dict], None]) -> str:
        wanted = _destination(_name("refused"), query=None, layout="")
        change(wanted)
        code, message = _code(lambda: firehose.create_delivery_stream(
            DeliveryStreamName=_name("refused"), ExtendedS3DestinationConfiguration=wanted))  # fmt: skip
        assert code == "InvalidArgumentException", message
        return message

    conversion = "DataFormatConversionConfiguration"
    assert "OrcSerDe" in refused(
        lambda d: d[conversion]["OutputFormatConfiguration"].update(Serializer={"OrcSerDe": {}})
    )
    assert "raw delivery" in refused(lambda d: d.pop(conversion))
    assert "at least 64" in refused(lambda d: d["BufferingHints"].update(SizeInMBs=5))
    assert "UNCOMPRESSED" in refused(lambda d: d.update(CompressionFormat="GZIP"))
    assert "package.module:function" in refused(lambda d: d.update(ProcessingConfiguration={"Processors": [
        {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn",
                                           "ParameterValue": "arn:aws:lambda:us-east-1:000000000000:function:f"}]}]}))  # fmt: skip
    assert "DynamicPartitioningConfiguration" in refused(
        lambda d: d.update(Prefix="x/k=!{partitionKeyFromQuery:k}/")
    )
    # a dataset belongs to one delivery stream (sinks.ownership)
    taken = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert taken["Destinations"][0]["ExtendedS3DestinationDescription"]["Prefix"] == f"{dataset}/"
    message = refused(lambda d: d.update(Prefix=f"{dataset}/"))
    assert f"dataset {dataset!r}" in message and f"belongs to delivery stream {name!r}" in message
    # the account's quota of streams
    before = server.service.max_streams
    server.service.max_streams = len(firehose.list_delivery_streams(Limit=10_000)["DeliveryStreamNames"])
    try:
        assert _code(lambda: firehose.create_delivery_stream(
            DeliveryStreamName=_name("quota"), ExtendedS3DestinationConfiguration=destination))[0] == "LimitExceededException"  # fmt: skip
    finally:
        server.service.max_streams = before


def test_describe_list_and_delete(server: Server, firehose, kafka_bootstrap) -> None:
    first, second = f"aaa-{uuid.uuid4().hex[:8]}", f"aab-{uuid.uuid4().hex[:8]}"
    for name in (first, second):
        _create(firehose, name, _destination(_name("listed"), query=None, layout="v=1/"),
                DeliveryStreamType="DirectPut", DirectPutSourceConfiguration={"ThroughputHintInMBs": 5})  # fmt: skip
    described = firehose.describe_delivery_stream(DeliveryStreamName=first)["DeliveryStreamDescription"]
    assert described["DeliveryStreamStatus"] == "ACTIVE"
    assert described["DeliveryStreamType"] == "DirectPut"
    assert described["VersionId"] == "1"
    assert described["HasMoreDestinations"] is False
    assert described["Source"] == {"DirectPutSourceDescription": {"ThroughputHintInMBs": 5}}
    destination = described["Destinations"][0]
    assert destination["DestinationId"] == "destinationId-000000000001"
    assert destination["ExtendedS3DestinationDescription"]["BufferingHints"] == {
        "SizeInMBs": 64,
        "IntervalInSeconds": 1,
    }
    assert destination["ExtendedS3DestinationDescription"]["CompressionFormat"] == "UNCOMPRESSED"

    everything = firehose.list_delivery_streams(Limit=10_000)["DeliveryStreamNames"]
    assert everything == sorted(everything) and {first, second} <= set(everything)
    page = firehose.list_delivery_streams(Limit=1, ExclusiveStartDeliveryStreamName="aaa-")
    assert page == {
        "DeliveryStreamNames": [first],
        "HasMoreDeliveryStreams": True,
        "ResponseMetadata": page["ResponseMetadata"],
    }
    after = firehose.list_delivery_streams(Limit=1, ExclusiveStartDeliveryStreamName=first)[
        "DeliveryStreamNames"
    ]
    assert after == [second]
    assert (
        first
        not in firehose.list_delivery_streams(DeliveryStreamType="KinesisStreamAsSource", Limit=10_000)[
            "DeliveryStreamNames"
        ]
    )

    firehose.delete_delivery_stream(DeliveryStreamName=first)
    try:  # DELETING while the sink stops and the topic and group go (gone already on a fast machine)
        assert _status(firehose, first) == "DELETING"
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"

    _wait(lambda: _deleted(firehose, first), f"{first} was not deleted")
    assert first not in firehose.list_delivery_streams(Limit=10_000)["DeliveryStreamNames"]
    assert second in firehose.list_delivery_streams(Limit=10_000)["DeliveryStreamNames"]
    kept = describe_topics(kafka_bootstrap, [direct_put_topic(first)])  # the topic stays, its group goes
    assert [(t.name, t.partitions) for t in kept] == [(direct_put_topic(first), 4)]
    assert (
        _code(lambda: firehose.delete_delivery_stream(DeliveryStreamName=first))[0]
        == "ResourceNotFoundException"
    )


def test_a_failing_sink_is_restarted_and_serve_answers_meanwhile(server: Server, firehose, athena) -> None:
    dataset, name = _name("blocked"), _name("blocked")
    _create(firehose, name, _destination(dataset))
    (server.lake / dataset).write_text("a file where the dataset's folder goes: every write fails")
    _put(firehose, name, [_order(i) for i in range(20)])
    _wait(lambda: server.service.restarts(name)[0] >= 2, "the sink was not restarted")
    failure = server.service.restarts(name)[1] or ""
    # the writer checks each folder on the way with lstat (no write through a link, F5)
    assert failure.startswith(
        f"SinkWriteError: could not check the folder {server.lake / dataset}/customer=c"
    )
    assert "(Not a directory); nothing was committed" in failure
    assert _status(firehose, name) == "ACTIVE"  # the endpoint answers while the sink fails
    (server.lake / dataset).unlink()
    _wait(lambda: _rows(server.lake, dataset)[0] == 20, "delivery after the failures")
    time.sleep(1.5)
    assert _athena(athena, f"SELECT count(*), count(DISTINCT order_id) FROM {dataset}") == [["20", "20"]]


def test_definitions_survive_a_restart_and_deliver_again(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = _settings(kafka_bootstrap, tmp_path)
    state = tmp_path / "run" / "firehose"
    dataset, name = _name("restart"), _name("restart")

    def serving() -> tuple[FirehoseService, object]:
        service = FirehoseService(settings, state, restart_backoff_s=(0.2, 2.0))
        service.start()
        return service, aws_endpoint(stand_in_query_app, {TARGET_PREFIX: firehose_actions(service)})

    service, app = serving()
    try:
        with endpoint_in_thread(app) as url:
            client = aws_client("firehose", url)
            _create(client, name, _destination(dataset))
            _put(client, name, [_order(i) for i in range(50)])
            _wait(lambda: _rows(settings.lake.root, dataset)[0] == 50, "first delivery")
    finally:
        service.close()
    assert json.loads((state / f"{name}.json").read_text())["name"] == name

    service, app = serving()
    try:
        with endpoint_in_thread(app) as url:
            client = aws_client("firehose", url)
            assert name in client.list_delivery_streams()["DeliveryStreamNames"]
            _wait(lambda: _status(client, name) == "ACTIVE", "ACTIVE again")
            _put(client, name, [_order(i) for i in range(50, 80)])
            _wait(lambda: _rows(settings.lake.root, dataset)[0] == 80, "delivery after the restart")
            time.sleep(1.5)
            assert _rows(settings.lake.root, dataset, "count(*), count(DISTINCT order_id)") == (80, 80)
    finally:
        service.close()


def test_the_aws_cli_puts_a_batch(server: Server, firehose) -> None:
    dataset, name = _name("cli"), _name("cli")
    _create(firehose, name, _destination(dataset))
    env = aws_cli_env("x")
    aws = AWS_CLI
    records = json.dumps([{"Data": _order(i).decode()} for i in range(3)])
    put = subprocess.run(
        [aws, "--endpoint-url", server.url, "firehose", "put-record-batch", "--delivery-stream-name", name,
         "--records", records, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    answer = json.loads(put.stdout)
    assert answer["FailedPutCount"] == 0 and len(answer["RequestResponses"]) == 3
    _wait(lambda: _rows(server.lake, dataset)[0] == 3, "delivery")
    assert _rows(server.lake, dataset, "list(order_id ORDER BY order_id)") == (
        ["o00000", "o00001", "o00002"],
    )


# -- the crash drill: kill -9 of `tidelake serve` mid-delivery --------------------------------------


def _start_serve(root: Path, bootstrap: str, port: int, log_name: str) -> subprocess.Popen:
    """`tidelake serve` on `port`, its output in `root/log_name` (the file closes with the process's
    handle: the child has its own copy)."""
    env = {
        **os.environ,
        "TIDELAKE_RUNTIME__STATE_DIR": str(root / "run"),
        "TIDELAKE_QUERY__RESULTS_DIR": str(root / "results"),
    }
    command = [sys.executable, "-m", "tidelake.cli", "serve", "--port", str(port), "--lake", str(root / "lake"),
               "--bootstrap-servers", bootstrap]  # fmt: skip
    with (root / log_name).open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"tidelake serve did not listen on {port}: {(root / log_name).read_text()}")
            time.sleep(0.1)


def test_kill_9_of_serve_mid_delivery_loses_and_repeats_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    port = free_port()
    dataset, name = _name("crash"), _name("crash")
    serve = _start_serve(tmp_path, kafka_bootstrap, port, "serve-1.log")
    try:
        client = aws_client("firehose", f"http://127.0.0.1:{port}", attempts=3)
        _create(client, name, _destination(dataset, interval_s=0))
        values = [_order(i, customers=7) for i in range(4000)]
        _put(client, name, values[:2000], batch=250)
        _wait(lambda: _rows(tmp_path / "lake", dataset)[0] > 0, "a first flush")
    finally:
        serve.send_signal(signal.SIGKILL)
        serve.wait(timeout=30)
    delivered_before = _rows(tmp_path / "lake", dataset)[0]
    serve = _start_serve(tmp_path, kafka_bootstrap, port, "serve-2.log")
    try:
        client = aws_client("firehose", f"http://127.0.0.1:{port}", attempts=3)
        assert name in client.list_delivery_streams()["DeliveryStreamNames"]
        _wait(lambda: _status(client, name) == "ACTIVE", "ACTIVE after the restart")
        _put(client, name, values[2000:], batch=250)
        _wait(lambda: _rows(tmp_path / "lake", dataset)[0] >= 4000, "every record")
        time.sleep(1.5)
        counted = _rows(tmp_path / "lake", dataset, "count(*), count(DISTINCT order_id), sum(amount)")
        assert counted == (4000, 4000, sum(range(4000))), (
            f"{delivered_before} rows were in the lake at the kill"
        )
    finally:
        serve.terminate()
        serve.wait(timeout=60)


def test_kafkas_internal_topics_are_no_kinesis_source(server: Server, firehose) -> None:
    source = {
        "KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/__consumer_offsets",
        "RoleARN": ROLE,
    }
    code, message = _code(
        lambda: firehose.create_delivery_stream(
            DeliveryStreamName=_name("internal"),
            DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration=source,
            ExtendedS3DestinationConfiguration=_destination(_name("internal"), query=None, layout=""),
        )
    )
    assert (code, message) == (
        "InvalidArgumentException",
        "arn:aws:kinesis:us-east-1:000000000000:stream/__consumer_offsets is Kafka's internal topic "
        "__consumer_offsets, not a Kinesis stream",
    )


def test_what_the_security_review_found_is_refused_through_the_api(
    server: Server, firehose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F0 (a LambdaArn imports any module), F4/F14 (jq reads env/files, loops forever), F10 (odd
    dataset folders): each is an InvalidArgumentException before anything runs."""
    marker = tmp_path / "imported"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fh_api_hooks.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\n"
        "def h(event, context):\n"
        "    return {'records': [{'recordId': r['recordId'], 'result': 'Ok', 'data': r['data']}"
        " for r in event['records']]}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.delitem(sys.modules, "fh_api_hooks", raising=False)

    def create(name: str, destination: dict) -> tuple[str, str]:
        return _code(lambda: firehose.create_delivery_stream(
            DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination))  # fmt: skip

    def with_lambda(dataset: str, reference: str) -> dict:
        destination = _destination(dataset, query=None, layout="")
        destination["ProcessingConfiguration"] = {"Processors": [
            {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": reference}]}]}  # fmt: skip
        return destination

    assert server.settings.query.firehose_hook_modules == []
    for reference in ("fh_api_hooks:h", "venv.__main__:x"):
        assert create(_name("hook"), with_lambda(_name("hook"), reference)) == (
            "InvalidArgumentException",
            f"LambdaArn {reference!r}: the serve operator allows no transform hook module "
            "(setting query.firehose_hook_modules, env TIDELAKE_QUERY__FIREHOSE_HOOK_MODULES, is empty)",
        )
    monkeypatch.setattr(server.settings.query, "firehose_hook_modules", ["fh_api"])
    assert create(_name("hook"), with_lambda(_name("hook"), "fh_api_hooks:h")) == (
        "InvalidArgumentException",
        "LambdaArn 'fh_api_hooks:h': module 'fh_api_hooks' is not in the setting "
        "query.firehose_hook_modules ['fh_api']",
    )
    assert not marker.exists() and "venv.__main__" not in sys.modules
    # the operator allows the module: the hook runs
    monkeypatch.setattr(server.settings.query, "firehose_hook_modules", ["fh_api_hooks"])
    dataset, name = _name("hooked"), _name("hooked")
    _create(firehose, name, with_lambda(dataset, "fh_api_hooks:h"))
    assert marker.read_text() == "x"
    _put(firehose, name, [_order(i) for i in range(5)])
    _wait(lambda: _rows(server.lake, dataset)[0] == 5, "delivery through the allowed hook")
    firehose.delete_delivery_stream(DeliveryStreamName=name)

    for query in (
        'import "creds" as $c; {customer_id: ($c[0].pw)}',
        "{customer_id: $ENV.HOME}",
        "{customer_id: (last(range(1e15))|tostring)}",
    ):
        code, message = create(_name("jq"), _destination(_name("jq"), query=query))
        assert code == "InvalidArgumentException"
        assert message == f"MetadataExtractionQuery {query!r} is refused: tidelake accepts {ACCEPTED_SHAPE}"

    for first in ("_sinks", ".."):
        destination = _destination("x", query=None, layout="")
        destination["Prefix"] = f"{first}/x/"
        assert create(_name("prefix"), destination) == (
            "InvalidArgumentException",
            f"Prefix '{first}/x/': its first folder {first!r} names the dataset and must be a lake dataset "
            "name (^[a-z][a-z0-9_]{0,62}$; letters, digits, '.', '-' are made one, as raw-events -> raw_events): "
            "it starts with a letter (no '_', '.', '..') and holds no other character",
        )


def test_a_stream_made_again_under_its_name_adds_to_the_dataset_and_rewrites_nothing(
    server: Server, firehose
) -> None:
    name, dataset = _name("again"), _name("again")
    for run in range(2):
        _create(firehose, name, _destination(dataset, query=None, layout="v=1/"))
        _put(firehose, name, [_order(100 * run + i) for i in range(30)])
        _wait(lambda run=run: _rows(server.lake, dataset) == (30 * (run + 1),), f"run {run} not delivered")
        firehose.delete_delivery_stream(DeliveryStreamName=name)
        _wait(lambda: _deleted(firehose, name), f"{name} was not deleted")
    assert _rows(server.lake, dataset, "count(*), count(DISTINCT order_id)") == (60, 60)
