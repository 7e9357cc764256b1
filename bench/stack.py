"""The test stack users' tests get (`tidelake.testing`, issue 17): how long it takes to start, and how
long a typical test takes on it, beside MiniStack doing the same.

Figures (seconds, lower is better; goals from issue 17: start <= 10 s on 2 cores with Kafka's jars
cached, the test <= 5 s):
- **stack start**: `start_stack` from nothing to ready, its own local broker and serve started
  concurrently (broker with the test stack's fast-start JVM options and class archive), against
  `python -m ministack` to its health check answering. MiniStack is the baseline a user would
  otherwise reach for now that LocalStack needs an account token: a Python process, no Kafka, no
  JVM, so its start is the floor for a stack that has to boot a broker.
- **stack start, broker defaults**: the same with the broker's own JVM options (what the stack
  started with before the fast-start options), to show what those buy.
- **put 1,000, read back via Athena**: CreateDeliveryStream (DirectPut), PutRecordBatch 2 x 500
  JSON records, wait until they are queryable (tidelake: `stack.wait_delivered`, a forced flush to
  Parquet; MiniStack writes each record to S3 at once), then Athena `SELECT count(*), sum(amount)`
  to its rows (MiniStack: over a Glue table on the raw JSON, run by its DuckDB). Both must answer
  (1000, 999000) or the benchmark fails.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.aws_apis import (
    MINISTACK_VERSION,
    client,
    load_average,
    ministack_python,
    ministack_server,
    ministack_version,
)
from bench.harness import BenchContext, Comparison, console
from tidelake.testing.brokers import BOOTSTRAP_ENV
from tidelake.testing.stack import start_stack

ROLE = "arn:aws:iam::000000000000:role/firehose"
RECORDS = 1_000
BATCH = 500
EXPECTED = (RECORDS, sum(i * 2 for i in range(RECORDS)))


def _records() -> list[dict[str, bytes]]:
    return [{"Data": json.dumps({"id": i, "amount": i * 2}).encode() + b"\n"} for i in range(RECORDS)]


def _put(firehose: Any, name: str) -> None:
    records = _records()
    for start in range(0, RECORDS, BATCH):
        answer = firehose.put_record_batch(DeliveryStreamName=name, Records=records[start : start + BATCH])
        if answer["FailedPutCount"]:
            msg = f"{answer['FailedPutCount']} records of {name} not put"
            raise RuntimeError(msg)


def _athena(athena: Any, sql: str, **extra: Any) -> tuple[int, int]:
    query_id = athena.start_query_execution(QueryString=sql, **extra)["QueryExecutionId"]
    pause, deadline = threading.Event(), time.monotonic() + 60
    while True:
        status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if status["State"] not in ("QUEUED", "RUNNING"):
            break
        if time.monotonic() > deadline:
            msg = f"Athena query {query_id} still {status['State']} after 60 s"
            raise RuntimeError(msg)
        pause.wait(0.02)
    if status["State"] != "SUCCEEDED":
        msg = f"Athena query {status['State']}: {status.get('StateChangeReason')}"
        raise RuntimeError(msg)
    row = athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]["Rows"][1]["Data"]
    return int(row[0]["VarCharValue"]), int(row[1]["VarCharValue"])


def _checked(side: str, got: tuple[int, int]) -> None:
    if got != EXPECTED:
        msg = f"{side}: Athena answered {got} for {EXPECTED} put"
        raise RuntimeError(msg)


@contextmanager
def _own_broker() -> Any:
    """The stack starts its own broker, as a user's session does (not the bench broker)."""
    saved = os.environ.pop(BOOTSTRAP_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[BOOTSTRAP_ENV] = saved


def _tidelake_run(scratch: Path) -> tuple[float, float, str]:
    with _own_broker(), start_stack(scratch) as stack:
        start_s = stack.start_s
        label = f"serve ready {stack.serve_ready_s:.1f} s, broker {stack.broker_ready_s:.1f} s"
        begun = time.monotonic()
        firehose = stack.client("firehose")
        firehose.create_delivery_stream(
            DeliveryStreamName="bench-orders",
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE,
                "BucketARN": "arn:aws:s3:::tidelake-lake",
                "Prefix": "bench_orders/",
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
                "DataFormatConversionConfiguration": {
                    "SchemaConfiguration": {
                        "RoleARN": ROLE,
                        "DatabaseName": "default",
                        "TableName": "bench_orders",
                    },
                    "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                    "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}},
                },
            },
        )
        _put(firehose, "bench-orders")
        stack.wait_delivered("bench-orders", RECORDS, timeout_s=60)
        _checked(
            "tidelake", _athena(stack.client("athena"), "SELECT count(*), sum(amount) FROM bench_orders")
        )
        test_s = time.monotonic() - begun
    return start_s, test_s, label


def _default_jvm_start(scratch: Path) -> float:
    with _own_broker(), start_stack(scratch, fast_start=False) as stack:
        return stack.start_s


def _ministack_run(scratch: Path) -> tuple[float, float]:
    begun = time.monotonic()
    with ministack_server(scratch) as server:
        start_s = time.monotonic() - begun
        begun = time.monotonic()
        s3, firehose, glue, athena = (client(s, server.url) for s in ("s3", "firehose", "glue", "athena"))
        s3.create_bucket(Bucket="lake")
        firehose.create_delivery_stream(
            DeliveryStreamName="bench-orders",
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE,
                "BucketARN": "arn:aws:s3:::lake",
                "Prefix": "orders/",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
            },
        )
        _put(firehose, "bench-orders")
        glue.create_database(DatabaseInput={"Name": "default"})
        glue.create_table(
            DatabaseName="default",
            TableInput={
                "Name": "orders",
                "TableType": "EXTERNAL_TABLE",
                "StorageDescriptor": {
                    "Location": "s3://lake/orders/",
                    "Columns": [{"Name": "id", "Type": "bigint"}, {"Name": "amount", "Type": "bigint"}],
                    "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
                    "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
                },
            },
        )
        got = _athena(
            athena,
            "SELECT count(*), sum(amount) FROM orders",
            QueryExecutionContext={"Database": "default"},
            ResultConfiguration={"OutputLocation": "s3://lake/results/"},
        )
        _checked("MiniStack", got)
        return start_s, time.monotonic() - begun


def run(context: BenchContext) -> list[Comparison]:
    load_before = load_average()
    ours_start, ours_test, detail = _tidelake_run(context.scratch / "tidelake")
    default_start = _default_jvm_start(context.scratch / "tidelake-default-jvm")
    ms_start, ms_test = _ministack_run(context.scratch / "ministack")
    version = ministack_version(ministack_python())
    if version != MINISTACK_VERSION:
        console.print(f"[yellow]MiniStack {version}, not the pinned {MINISTACK_VERSION}[/]")
    notes = f"load {load_before} -> {load_average()}; jars and class archive cached; {detail}"
    console.print(
        f"stack start {ours_start:.2f} s ({detail}); broker defaults {default_start:.2f} s; "
        f"MiniStack {ms_start:.2f} s. Put {RECORDS:,} + Athena read: {ours_test:.2f} s vs MiniStack {ms_test:.2f} s"
    )
    baseline = f"MiniStack {version}"
    return [
        Comparison(
            "stack",
            "stack start (broker + serve)",
            "s",
            ours_start,
            ms_start,
            baseline,
            False,
            "<= 10 s",
            notes,
        ),
        Comparison(
            "stack",
            "stack start (broker + serve)",
            "s",
            ours_start,
            default_start,
            "tidelake stack, broker's default JVM",
            False,
            "<= 10 s",
            notes,
        ),
        Comparison(
            "stack",
            f"put {RECORDS:,} + read back via Athena",
            "s",
            ours_test,
            ms_test,
            baseline,
            False,
            "<= 5 s",
            notes + "; ours Parquet via a forced flush, MiniStack raw JSON",
        ),
    ]
