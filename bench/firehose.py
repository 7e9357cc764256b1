"""Firehose benchmark: boto3's PutRecordBatch into a DirectPut delivery stream with a 1 s buffer,
timed until the records are queryable, against `tidelake serve` (a Kafka topic, a delivery stream
writing Parquet into the lake) beside the same client code against MiniStack (Firehose -> its S3).

The destination, on both sides: ExtendedS3, `Prefix` `<dataset>/dt=!{timestamp:yyyy-MM-dd}/
hour=!{timestamp:HH}/`, BufferingHints 1 s / 64 MiB (64 MiB is Firehose's least with format
conversion). Ours converts to Parquet (DataFormatConversionConfiguration: OpenX JSON in, ParquetSerDe
SNAPPY out; it refuses raw delivery). MiniStack's Firehose ignores BufferingHints and writes each
record as an S3 object of its own while PutRecordBatch runs; it converts to Parquet only with DuckDB
installed and a Glue table, one DuckDB table and one Parquet object per record.

Rows:
- `put to queryable` (records/s): 20,000 x scale events of ~215 bytes, 500 a PutRecordBatch call from
  one client, timed from the first call until all of them are queryable: ours, every record in
  visible Parquet files of the dataset (counted with DuckDB as the lake's readers see them);
  MiniStack, one S3 object per record listed by ListObjectsV2 (raw JSON delivery, its fastest).
  Then each side must hold exactly the ids put (ours also through its Athena API: count(*) and
  count(DISTINCT event_id) over the dataset), or the run fails.
- `put to queryable, Parquet on both` (records/s): the same with `PARQUET_RECORDS` records and
  MiniStack's Parquet conversion (its Glue table declares the events' columns), so the formats
  match; fewer records because MiniStack converts each record alone.
- `freshness p50` / `p99` (s): a marked record put every 100 ms (PutRecord) for 20 s; seconds from the
  call to the record being queryable (ours: in a visible Parquet file; MiniStack: its object
  listed), per record. MiniStack's "freshness" is the time of its synchronous per-record write.
Delivery streams are ACTIVE before any timing (ours: its sink has joined its consumer group).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from bench.aws_apis import (
    Server,
    client,
    event,
    event_id,
    load_average,
    ministack_python,
    ministack_server,
    ministack_version,
    percentile,
    tidelake_serve,
)
from bench.harness import BenchContext, Comparison, console
from core.lake import is_visible_file

RECORDS = 20_000
PARQUET_RECORDS = 300
BATCH = 500
FRESHNESS_SECONDS = 20.0
FRESHNESS_PERIOD_S = 0.1
QUERYABLE_TIMEOUT_S = 300.0
MAX_PUT_ATTEMPTS = 5
ROLE = "arn:aws:iam::000000000000:role/bench-firehose"
BUCKET = "bench-lake"
GOAL_THROUGHPUT = "ratio >= 1.0 (ahead of MiniStack)"
GOAL_FRESHNESS = "p99 <= 2.5 s (1 s buffer)"
#: The events' columns, for MiniStack's Glue table (its Parquet conversion reads them from Glue).
COLUMNS = [
    ("event_id", "string"),
    ("event_time", "string"),
    ("visitor_id", "string"),
    ("method", "string"),
    ("page", "string"),
    ("status", "int"),
    ("bytes", "bigint"),
    ("user_agent", "string"),
    ("is_bot", "boolean"),
]


def destination(dataset: str, parquet: bool) -> dict[str, Any]:
    """The ExtendedS3DestinationConfiguration both sides get (Parquet or raw)."""
    config: dict[str, Any] = {
        "RoleARN": ROLE,
        "BucketARN": f"arn:aws:s3:::{BUCKET}",
        "Prefix": f"{dataset}/dt=!{{timestamp:yyyy-MM-dd}}/hour=!{{timestamp:HH}}/",
        "ErrorOutputPrefix": f"errors/{dataset}/!{{firehose:error-output-type}}/",
        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 1},
    }
    if parquet:
        config["DataFormatConversionConfiguration"] = {
            "Enabled": True,
            "SchemaConfiguration": {"RoleARN": ROLE, "DatabaseName": "bench", "TableName": dataset},
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
        }
    return config


def create_stream(firehose, name: str, config: dict[str, Any], timeout_s: float = 120.0) -> None:
    """CreateDeliveryStream (DirectPut), then wait until DescribeDeliveryStream says ACTIVE."""
    firehose.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut", ExtendedS3DestinationConfiguration=config
    )
    deadline = time.monotonic() + timeout_s
    while True:
        status = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
            "DeliveryStreamStatus"
        ]
        if status == "ACTIVE":
            return
        if status.endswith("FAILED") or time.monotonic() > deadline:
            msg = f"delivery stream {name} is {status}"
            raise RuntimeError(msg)
        time.sleep(0.2)


def put_all(firehose, name: str, batches: list[list[dict]]) -> int:
    """PutRecordBatch every batch; a record that failed is put again. Returns how many were retried."""
    retried = 0
    for batch in batches:
        pending = batch
        for _attempt in range(MAX_PUT_ATTEMPTS):
            answer = firehose.put_record_batch(DeliveryStreamName=name, Records=pending)
            if not answer["FailedPutCount"]:
                break
            pending = [
                r
                for r, result in zip(pending, answer["RequestResponses"], strict=True)
                if "ErrorCode" in result
            ]
            retried += len(pending)
        else:
            msg = f"PutRecordBatch: {len(pending)} records still failed after {MAX_PUT_ATTEMPTS} attempts"
            raise RuntimeError(msg)
    return retried


def _batches(count: int, prefix: str) -> list[list[dict]]:
    records = [{"Data": event(i, prefix)} for i in range(count)]
    return [records[start : start + BATCH] for start in range(0, count, BATCH)]


def _wait_for(count: int, visible: Callable[[], int], what: str) -> None:
    deadline = time.monotonic() + QUERYABLE_TIMEOUT_S
    while (seen := visible()) < count:
        if time.monotonic() > deadline:
            msg = f"{what}: {seen:,} of {count:,} records queryable after {QUERYABLE_TIMEOUT_S:.0f} s"
            raise RuntimeError(msg)
        time.sleep(0.05)


def _check_ids(side: str, expected: set[str], found: list[str]) -> None:
    if len(found) != len(expected) or set(found) != expected:
        missing = expected - set(found)
        msg = (
            f"{side}: {len(found):,} records delivered for {len(expected):,} put, {len(set(found)):,} distinct; "
            f"{len(missing):,} missing (e.g. {sorted(missing)[:2]})"
        )
        raise RuntimeError(msg)


# -- ours: the lake ------------------------------------------------------------------------------
class LakeView:
    """What DuckDB sees of one dataset: visible Parquet files, each counted once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[Path, int] = {}
        self.db = duckdb.connect()

    def new_files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return [p for p in self.folder.rglob("*.parquet") if p not in self.rows and is_visible_file(p)]

    def count(self) -> int:
        for path in self.new_files():
            row = self.db.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
            self.rows[path] = int(row[0]) if row else 0
        return sum(self.rows.values())

    def ids(self, paths: list[Path] | None = None) -> list[str]:
        chosen = [str(p) for p in (paths if paths is not None else list(self.rows))]
        if not chosen:
            return []
        return [i for (i,) in self.db.execute("SELECT event_id FROM read_parquet(?)", [chosen]).fetchall()]

    def close(self) -> None:
        self.db.close()


def _athena_count(endpoint: str, table: str) -> tuple[int, int]:
    """count(*) and count(DISTINCT event_id) of `table` through ours' Athena API."""
    athena = client("athena", endpoint)
    query = f"SELECT count(*), count(DISTINCT event_id) FROM {table}"
    execution = athena.start_query_execution(QueryString=query, WorkGroup="primary")["QueryExecutionId"]
    deadline = time.monotonic() + 120
    while True:
        state = athena.get_query_execution(QueryExecutionId=execution)["QueryExecution"]["Status"]
        if state["State"] == "SUCCEEDED":
            break
        if state["State"] in ("FAILED", "CANCELLED") or time.monotonic() > deadline:
            msg = f"the Athena count over {table} ended {state}"
            raise RuntimeError(msg)
        time.sleep(0.1)
    rows = athena.get_query_results(QueryExecutionId=execution)["ResultSet"]["Rows"]
    values = [d.get("VarCharValue") for d in rows[1]["Data"]]
    return int(values[0]), int(values[1])


def _errors_in(lake: Path, dataset: str) -> list[Path]:
    return [p for p in lake.rglob("*") if p.is_file() and "_errors" in p.parts and dataset in p.parts]


def ours_throughput(server: Server, lake: Path, count: int) -> tuple[float, float]:
    """(put seconds, seconds to queryable) of `count` records on ours; checks every id."""
    endpoint = server.url
    firehose = client("firehose", endpoint)
    name = f"bench-fh-{uuid.uuid4().hex[:8]}"
    dataset = name.replace("-", "_")
    create_stream(firehose, name, destination(dataset, parquet=True))
    batches = _batches(count, "f")
    view = LakeView(lake / dataset)
    try:
        cpu, started = server.cpu_seconds(), time.perf_counter()
        put_all(firehose, name, batches)
        put_s = time.perf_counter() - started
        _wait_for(count, view.count, f"tidelake {name}")
        queryable_s, cpu = time.perf_counter() - started, server.cpu_seconds() - cpu
        _check_ids("tidelake serve", {event_id(r["Data"]) for b in batches for r in b}, view.ids())
        athena = _athena_count(endpoint, dataset)
        if athena != (count, count):
            msg = f"tidelake serve: Athena counts {athena} over {dataset} for {count:,} records put"
            raise RuntimeError(msg)
        if errors := _errors_in(lake, dataset):
            msg = f"tidelake serve: error records for {dataset}: {errors[:3]}"
            raise RuntimeError(msg)
    finally:
        view.close()
        firehose.delete_delivery_stream(DeliveryStreamName=name)
    console.print(
        f"tidelake serve: {count:,} records put in {put_s:.2f} s ({count / put_s:,.0f}/s), all queryable "
        f"in Parquet after {queryable_s:.2f} s ({count / queryable_s:,.0f}/s; Athena count {athena[0]:,}); "
        f"serve used {cpu:.2f} CPU s"
    )
    return put_s, queryable_s


# -- MiniStack: its S3 ---------------------------------------------------------------------------
def _ministack_setup(endpoint: str) -> None:
    """The bucket and, for Parquet conversion, the Glue database its tables go in."""
    client("s3", endpoint).create_bucket(Bucket=BUCKET)
    client("glue", endpoint).create_database(DatabaseInput={"Name": "bench"})


def _ministack_table(endpoint: str, dataset: str) -> None:
    client("glue", endpoint).create_table(
        DatabaseName="bench",
        TableInput={
            "Name": dataset,
            "TableType": "EXTERNAL_TABLE",
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in COLUMNS],
                "Location": f"s3://{BUCKET}/{dataset}/",
            },
        },
    )


def _keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _object_ids(s3, keys: list[str], parquet: bool) -> list[str]:
    import io

    def ids_of(key: str) -> list[str]:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if parquet:
            return [
                str(i) for i in pq.read_table(io.BytesIO(body), columns=["event_id"]).column(0).to_pylist()
            ]
        return [event_id(body)]

    with ThreadPoolExecutor(4) as pool:
        return [i for found in pool.map(ids_of, keys) for i in found]


def ministack_throughput(server: Server, count: int, parquet: bool) -> tuple[float, float]:
    """(put seconds, seconds to queryable) of `count` records on MiniStack; checks every id."""
    endpoint = server.url
    firehose, s3 = client("firehose", endpoint), client("s3", endpoint)
    name = f"bench-fh-{uuid.uuid4().hex[:8]}"
    dataset = name.replace("-", "_")
    if parquet:
        _ministack_table(endpoint, dataset)
    create_stream(firehose, name, destination(dataset, parquet=parquet))
    batches = _batches(count, "f")
    cpu, started = server.cpu_seconds(), time.perf_counter()
    put_all(firehose, name, batches)
    put_s = time.perf_counter() - started
    _wait_for(count, lambda: len(_keys(s3, f"{dataset}/")), f"MiniStack {name}")
    queryable_s, cpu = time.perf_counter() - started, server.cpu_seconds() - cpu
    if errors := _keys(s3, f"errors/{dataset}/"):
        msg = f"MiniStack: {len(errors)} error objects for {dataset}, e.g. {errors[:2]}"
        raise RuntimeError(msg)
    ids = _object_ids(s3, _keys(s3, f"{dataset}/"), parquet)
    _check_ids("MiniStack", {event_id(r["Data"]) for b in batches for r in b}, ids)
    firehose.delete_delivery_stream(DeliveryStreamName=name)
    console.print(
        f"MiniStack ({'Parquet' if parquet else 'raw JSON'}): {count:,} records put in {put_s:.2f} s "
        f"({count / put_s:,.0f}/s), all in its S3 after {queryable_s:.2f} s ({count / queryable_s:,.0f}/s); "
        f"MiniStack used {cpu:.2f} CPU s"
    )
    return put_s, queryable_s


# -- freshness -----------------------------------------------------------------------------------
def freshness(
    endpoint: str, seconds: float, create: Callable[[str], None], watch: Callable[[], list[str]]
) -> list[float]:
    """Put a marked record every 100 ms for `seconds`; `watch()` returns ids newly queryable. The
    latency of a record: from just before its PutRecord call to the poll that first sees it."""
    firehose = client("firehose", endpoint)
    name = f"bench-fresh-{uuid.uuid4().hex[:8]}"
    create(name)
    put_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    done = threading.Event()

    def watcher() -> None:
        while not done.is_set() or len(seen_at) < len(put_at):
            found = watch()
            now = time.time()
            for ident in found:
                seen_at.setdefault(ident, now)
            if done.is_set() and time.time() > deadline:
                return
            time.sleep(0.02)

    deadline = float("inf")
    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    started = time.time()
    index = 0
    while time.time() - started < seconds:
        tick = time.time()
        data = event(index, "fresh", int(tick * 1e6))
        put_at[event_id(data)] = tick
        firehose.put_record(DeliveryStreamName=name, Record={"Data": data})
        index += 1
        time.sleep(max(0.0, FRESHNESS_PERIOD_S - (time.time() - tick)))
    deadline = time.time() + 30
    done.set()
    thread.join(60)
    firehose.delete_delivery_stream(DeliveryStreamName=name)
    missing = set(put_at) - set(seen_at)
    if missing:
        msg = f"freshness run: {len(missing)} of {len(put_at)} marked records never became queryable"
        raise RuntimeError(msg)
    return [seen_at[i] - put_at[i] for i in put_at]


def ours_freshness(endpoint: str, lake: Path, seconds: float) -> list[float]:
    state: dict[str, LakeView] = {}

    def create(name: str) -> None:
        dataset = name.replace("-", "_")
        state["view"] = LakeView(lake / dataset)
        create_stream(client("firehose", endpoint), name, destination(dataset, parquet=True))

    def watch() -> list[str]:
        view = state["view"]
        fresh = view.new_files()
        for path in fresh:
            view.rows[path] = 0
        return view.ids(fresh) if fresh else []

    try:
        return freshness(endpoint, seconds, create, watch)
    finally:
        if "view" in state:
            state["view"].close()


def ministack_freshness(endpoint: str, seconds: float) -> list[float]:
    s3 = client("s3", endpoint)
    state: dict[str, Any] = {"known": set()}

    def create(name: str) -> None:
        state["prefix"] = f"{name.replace('-', '_')}/"
        create_stream(client("firehose", endpoint), name, destination(state["prefix"][:-1], parquet=False))

    def watch() -> list[str]:
        fresh = [k for k in _keys(s3, state["prefix"]) if k not in state["known"]]
        state["known"].update(fresh)
        return _object_ids(s3, fresh, parquet=False) if fresh else []

    return freshness(endpoint, seconds, create, watch)


def run(context: BenchContext) -> list[Comparison]:
    count = max(1_000, int(RECORDS * context.scale))
    parquet_count = max(50, int(PARQUET_RECORDS * min(1.0, context.scale)))
    fresh_s = max(5.0, FRESHNESS_SECONDS * min(1.0, context.scale * 2))
    baseline = f"MiniStack {ministack_version(ministack_python())}"
    lake = context.scratch / "lake"
    loads = [load_average()]
    with (
        tidelake_serve(context.bootstrap_servers, lake, context.scratch / "serve") as serve,
        ministack_server(context.scratch / "ministack") as ministack,
    ):
        _ministack_setup(ministack.url)
        _, ms_raw_s = ministack_throughput(ministack, count, parquet=False)
        _, ours_s = ours_throughput(serve, lake, count)
        loads.append(load_average())
        _, ms_parquet_s = ministack_throughput(ministack, parquet_count, parquet=True)
        _, ours_small_s = ours_throughput(serve, lake, parquet_count)
        loads.append(load_average())
        ours_lat = ours_freshness(serve.url, lake, fresh_s)
        ms_lat = ministack_freshness(ministack.url, fresh_s)
    loads.append(load_average())
    for side, lat in (("tidelake serve", ours_lat), (baseline, ms_lat)):
        console.print(
            f"freshness {side}: {len(lat)} marked records, p50 {percentile(lat, 0.5):.3f} s, "
            f"p99 {percentile(lat, 0.99):.3f} s, max {max(lat):.3f} s"
        )
    load_note = f"load avg {loads[0]} -> {loads[-1]}"
    notes = (
        f"{count:,} records of ~215 B, {BATCH} a call, one client; ours Parquet (1 s buffer) counted by DuckDB "
        f"and Athena, MiniStack raw JSON (an S3 object per record, buffering ignored); all ids back; {load_note}"
    )
    parquet_notes = (
        f"{parquet_count:,} records; MiniStack converts each record to its own Parquet object (DuckDB, Glue "
        f"table); {load_note}"
    )
    fresh_notes = (
        f"{len(ours_lat)} marked records, one every {FRESHNESS_PERIOD_S * 1000:.0f} ms (PutRecord), 1 s buffer; "
        f"MiniStack writes each record during the call; {load_note}"
    )
    return [
        Comparison("firehose", "put to queryable", "records/s", count / ours_s, count / ms_raw_s,
                   f"{baseline}, raw JSON", goal=GOAL_THROUGHPUT, notes=notes),
        Comparison("firehose", "put to queryable, Parquet on both", "records/s", parquet_count / ours_small_s,
                   parquet_count / ms_parquet_s, f"{baseline}, Parquet", goal=GOAL_THROUGHPUT, notes=parquet_notes),
        Comparison("firehose", "freshness p50", "s", percentile(ours_lat, 0.5), percentile(ms_lat, 0.5),
                   f"{baseline}, raw JSON", higher_is_better=False, notes=fresh_notes),
        Comparison("firehose", "freshness p99", "s", percentile(ours_lat, 0.99), percentile(ms_lat, 0.99),
                   f"{baseline}, raw JSON", higher_is_better=False, goal=GOAL_FRESHNESS, notes=fresh_notes),
    ]  # fmt: skip


__all__ = ["run"]
