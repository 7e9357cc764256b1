"""`tidelake serve` answers every AWS service on one port, as a user starts it: Athena, Kinesis Data
Streams, Firehose and Glue, each through boto3 unchanged, over one real lake and a real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.aws_endpoints import aws_client, serve_process
from tests.unit.queries_lake import event, write_events

pytestmark = pytest.mark.integration

#: 3 hours of 20 events: three hourly partitions of one day.
EVENTS = [
    event(f"2026-11-30T{h:02d}:{m:02d}:00", f"v{m % 4}", f"/p{m % 5}") for h in (7, 8, 9) for m in range(20)
]


@pytest.fixture(scope="module")
def serve(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("serve-aws")
    write_events(root / "lake", EVENTS)
    env = {
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIDELAKE_RUNTIME__STATE_DIR": str(root / "state"),
    }
    log = root / "serve.log"
    args = ("--shard-quotas", "--firehose-hook-module", "serve_hooks")
    with serve_process(root / "lake", log, *args, env=env) as url:
        yield url, log


def test_the_banner_names_every_service_and_the_shard_quotas(serve: tuple[str, Path]) -> None:
    lines = serve[1].read_text().splitlines()
    assert (
        "  Kinesis Data Streams (Kinesis_20131202): shard quotas writes 1,000 records/s and 1 MiB/s, reads 5 calls/s and 2 MiB/s per shard"
        in lines
    )
    assert "  Firehose (Firehose_20150804): delivery streams made through the API run inside serve" in lines
    assert "  Glue Data Catalog (AWSGlue): database default is the lake" in lines
    port = serve[0].rsplit(":", 1)[1]
    assert (
        f"  S3 (REST; AWS_ENDPOINT_URL_S3=http://127.0.0.1:{port}): buckets tidelake-lake (the lake) "
        "and tidelake-query-results (query results, read-only)"
    ) in lines


def test_s3_lists_the_files_glue_and_athena_read(serve: tuple[str, Path]) -> None:
    s3 = aws_client("s3", serve[0])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["tidelake-lake", "tidelake-query-results"]
    listed = s3.list_objects_v2(Bucket="tidelake-lake", Prefix="clickstream_events/", Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["clickstream_events/dt=2026-11-30/"]
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket="tidelake-lake", Prefix="clickstream_events/")["Contents"]
    ]
    assert keys == [f"clickstream_events/dt=2026-11-30/hour={h}/part-0.parquet" for h in ("07", "08", "09")]


def test_glue_lists_the_lakes_dataset_and_its_partitions(serve: tuple[str, Path]) -> None:
    glue = aws_client("glue", serve[0])
    tables = glue.get_tables(DatabaseName="default")["TableList"]
    assert [t["Name"] for t in tables] == ["clickstream_events"]
    assert tables[0]["StorageDescriptor"]["Location"] == "s3://tidelake-lake/clickstream_events/"
    partitions = glue.get_partitions(DatabaseName="default", TableName="clickstream_events")["Partitions"]
    assert sorted(p["Values"][1] for p in partitions) == ["07", "08", "09"]


def test_athena_counts_what_glue_lists(serve: tuple[str, Path]) -> None:
    athena = aws_client("athena", serve[0])
    query_id = athena.start_query_execution(
        QueryString="SELECT count(*) FROM clickstream_events WHERE hour = 8"
    )["QueryExecutionId"]
    waiter_state = "QUEUED"
    for _ in range(600):
        waiter_state = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"][
            "State"
        ]
        if waiter_state not in ("QUEUED", "RUNNING"):
            break
        time.sleep(0.05)
    assert waiter_state == "SUCCEEDED"
    rows = athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]["Rows"]
    assert rows[1]["Data"] == [{"VarCharValue": "20"}]
    # the result is where GetQueryExecution says, in the results bucket S3 serves (awswrangler reads it there)
    location = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["ResultConfiguration"]
    assert location["OutputLocation"] == f"s3://tidelake-query-results/{query_id}.csv"
    csv = aws_client("s3", serve[0]).get_object(Bucket="tidelake-query-results", Key=f"{query_id}.csv")
    assert csv["Body"].read() == b'"count_star()"\n"20"\n'  # DuckDB's column name; Athena says _col0


def test_kinesis_and_firehose_answer_on_the_same_port(serve: tuple[str, Path]) -> None:
    kinesis = aws_client("kinesis", serve[0])
    kinesis.create_stream(StreamName="serve.aws.orders", ShardCount=1)
    try:
        put = kinesis.put_record(StreamName="serve.aws.orders", Data=b'{"order": 1}', PartitionKey="alice")
        iterator = kinesis.get_shard_iterator(
            StreamName="serve.aws.orders", ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator)["Records"]
        assert [(r["Data"], r["PartitionKey"], r["SequenceNumber"]) for r in records] == [
            (b'{"order": 1}', "alice", put["SequenceNumber"])
        ]
    finally:
        kinesis.delete_stream(StreamName="serve.aws.orders")
    firehose = aws_client("firehose", serve[0])
    assert firehose.list_delivery_streams()["DeliveryStreamNames"] == []


def test_firehose_lambda_hooks_only_from_the_modules_serve_allows(serve: tuple[str, Path]) -> None:
    firehose = aws_client("firehose", serve[0])

    def create(reference: str) -> dict:
        processors = [
            {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": reference}]}
        ]
        with pytest.raises(ClientError) as exc:
            firehose.create_delivery_stream(
                DeliveryStreamName="hooked",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::000000000000:role/firehose",
                    "BucketARN": "arn:aws:s3:::tidelake-lake",
                    "Prefix": "hooked/",
                    "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
                    "ProcessingConfiguration": {"Enabled": True, "Processors": processors},
                    "DataFormatConversionConfiguration": {
                        "SchemaConfiguration": {"DatabaseName": "default", "TableName": "hooked"},
                        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
                    },
                },
            )
        return exc.value.response["Error"]

    refused = create("os:system")
    assert refused["Code"] == "InvalidArgumentException"
    assert refused["Message"].startswith("LambdaArn 'os:system': module 'os' is not in the setting ")
    # an allowed module gets past the hook rule (and fails on what comes next: it does not exist)
    allowed = create("serve_hooks.missing:handler")
    assert "is not in the setting" not in allowed["Message"]


# awswrangler 3.17 (s3/_read.py) calls pandas.concat(copy=False), which pandas 3 deprecates: its warning, not ours
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_awswrangler_reads_the_lake_through_s3_and_athena(
    serve: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import awswrangler as wr
    import boto3

    for service in ("athena", "s3", "glue"):
        monkeypatch.setattr(wr.config, f"{service}_endpoint_url", serve[0])
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    frame = wr.s3.read_parquet("s3://tidelake-lake/clickstream_events/", dataset=True, boto3_session=session)
    assert sorted(frame["event_id"]) == sorted(e["event_id"] for e in EVENTS)
    assert sorted(frame["hour"].astype(str).unique()) == ["07", "08", "09"]
    counted = wr.athena.read_sql_query(
        "SELECT count(*) AS n FROM clickstream_events",
        database="default",
        ctas_approach=False,
        s3_output="s3://tidelake-query-results/",
        boto3_session=session,
    )
    assert counted["n"].tolist() == [len(EVENTS)]
    # the done-when, as a new user types it: awswrangler's defaults (ctas_approach=True, the
    # workgroup's OutputLocation as s3_output), which serve answers with CTAS into the results bucket
    defaults = wr.athena.read_sql_query(
        "SELECT count(*) FROM clickstream_events", database="default", boto3_session=session
    )
    assert defaults.iloc[0].tolist() == [len(EVENTS)]
    assert wr.catalog.tables(database="default", boto3_session=session)["Table"].tolist() == [
        "clickstream_events"
    ]
