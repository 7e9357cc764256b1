"""Kinesis Data Streams benchmark: boto3's PutRecords and GetRecords against `tidelake serve` (a
stream is a Kafka topic on the bench broker) beside the same client code against MiniStack (its
Kinesis keeps records in memory).

The run, identical on each side, each with a fresh 4-shard stream:
- put 200,000 x scale events of about 215 bytes of JSON (partition key `v<visitor>`, 9,973 keys) with
  `PutRecords`, 500 records a call, one call after the other from one client; a record the answer
  says failed is put again (neither side failed one in our runs: the retries are reported);
- read them back with `GetRecords` (Limit 10,000) from `TRIM_HORIZON` of every shard, round-robin
  over the shards, until each says it is caught up (`MillisBehindLatest` 0 on a page shorter than
  the limit).
Both phases are timed from their first call to their last answer (stream creation and the
payloads' preparation are outside the put timing; serve's Kafka producer and reader connect on the
first PutRecords and GetRecords, inside those timings, in about 30 ms; `ListShards` and
`GetShardIterator` are inside the get timing). Then each side must have returned every record: the
same multiset of payloads as put (so the count and the set of event ids), or the run fails.

The sides alternate `ROUNDS` times (the machine is shared) and the best run of each is reported.
The bench's broker is new, so tidelake's first round also warms the broker's JVM (at 50,000
records the broker's CPU for the first round's puts was 1.8x the second's).
Rows: PutRecords records/s and GetRecords records/s, ours beside MiniStack's.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

from bench.aws_apis import (
    Server,
    bench_broker_pid,
    client,
    cpu_seconds,
    event,
    load_average,
    ministack_python,
    ministack_server,
    ministack_version,
    tidelake_serve,
)
from bench.harness import BenchContext, Comparison, console

RECORDS = 200_000
SHARDS = 4
PUT_BATCH = 500
GET_LIMIT = 10_000
ROUNDS = 2
MAX_PUT_ATTEMPTS = 5
GOAL = "ratio >= 1.0 (ahead of MiniStack)"


@dataclass
class KinesisRun:
    put_s: float
    get_s: float
    retried: int
    get_calls: int
    #: CPU seconds of each phase, (client, server, broker): where the wall time went
    put_cpu: tuple[float, float, float]
    get_cpu: tuple[float, float, float]


def _batches(count: int) -> list[list[dict]]:
    records = [{"Data": event(i, "k"), "PartitionKey": f"v{i % 9973}"} for i in range(count)]
    return [records[start : start + PUT_BATCH] for start in range(0, count, PUT_BATCH)]


def put_all(kinesis, stream: str, batches: list[list[dict]]) -> int:
    """PutRecords every batch; a record that failed is put again. Returns how many were retried."""
    retried = 0
    for batch in batches:
        pending = batch
        for _attempt in range(MAX_PUT_ATTEMPTS):
            answer = kinesis.put_records(StreamName=stream, Records=pending)
            if not answer["FailedRecordCount"]:
                break
            pending = [
                r for r, result in zip(pending, answer["Records"], strict=True) if "ErrorCode" in result
            ]
            retried += len(pending)
        else:
            msg = f"PutRecords: {len(pending)} records still failed after {MAX_PUT_ATTEMPTS} attempts"
            raise RuntimeError(msg)
    return retried


def get_all(kinesis, stream: str) -> tuple[list[bytes], int]:
    """Every record of every shard from TRIM_HORIZON until each shard is caught up; (data, calls)."""
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    iterators = {
        s["ShardId"]: kinesis.get_shard_iterator(
            StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for s in shards
    }
    data: list[bytes] = []
    calls = 0
    while iterators:
        for shard_id, iterator in list(iterators.items()):
            answer = kinesis.get_records(ShardIterator=iterator, Limit=GET_LIMIT)
            calls += 1
            records = answer["Records"]
            data.extend(r["Data"] for r in records)
            caught_up = answer.get("MillisBehindLatest", 0) == 0 and len(records) < GET_LIMIT
            if caught_up or not answer.get("NextShardIterator"):
                del iterators[shard_id]
            else:
                iterators[shard_id] = answer["NextShardIterator"]
    return data, calls


def check_all_back(side: str, put: list[list[dict]], got: list[bytes]) -> None:
    """Fail loudly unless `got` holds exactly the payloads put: count, ids, no duplicates."""
    expected = Counter(r["Data"] for batch in put for r in batch)
    found = Counter(got)
    if found != expected:
        missing = expected - found
        extra = found - expected
        msg = (
            f"{side}: GetRecords returned {sum(found.values()):,} records for {sum(expected.values()):,} "
            f"put; {sum(missing.values()):,} missing (e.g. {list(missing)[:2]}), "
            f"{sum(extra.values()):,} extra or duplicated (e.g. {list(extra)[:2]})"
        )
        raise RuntimeError(msg)


def _cpu(server: Server, broker: int | None) -> tuple[float, float, float]:
    return time.process_time(), server.cpu_seconds(), cpu_seconds(broker)


def _spent(
    before: tuple[float, float, float], server: Server, broker: int | None
) -> tuple[float, float, float]:
    after = _cpu(server, broker)
    return after[0] - before[0], after[1] - before[1], after[2] - before[2]


def _one_run(side: str, server: Server, batches: list[list[dict]], broker: int | None = None) -> KinesisRun:
    """One side's put and get; `broker` (ours): the Kafka broker's PID, to count its CPU too."""
    kinesis = client("kinesis", server.url)
    stream = f"bench-kinesis-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=SHARDS)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    try:
        cpu, started = _cpu(server, broker), time.perf_counter()
        retried = put_all(kinesis, stream, batches)
        put_s, put_cpu = time.perf_counter() - started, _spent(cpu, server, broker)
        cpu, started = _cpu(server, broker), time.perf_counter()
        got, calls = get_all(kinesis, stream)
        get_s, get_cpu = time.perf_counter() - started, _spent(cpu, server, broker)
        check_all_back(side, batches, got)
    finally:
        kinesis.delete_stream(StreamName=stream)  # a shared broker should not keep the records
    count = sum(len(b) for b in batches)
    console.print(
        f"{side}: PutRecords {count:,} in {put_s:.2f} s = {count / put_s:,.0f}/s ({retried} retried); "
        f"GetRecords {count:,} in {get_s:.2f} s = {count / get_s:,.0f}/s ({calls} calls); all back. "
        f"CPU s client/server/broker: put {'/'.join(f'{c:.2f}' for c in put_cpu)}, "
        f"get {'/'.join(f'{c:.2f}' for c in get_cpu)}"
    )
    return KinesisRun(put_s, get_s, retried, calls, put_cpu, get_cpu)


def run(context: BenchContext) -> list[Comparison]:
    count = max(2_000, int(RECORDS * context.scale))
    batches = _batches(count)
    baseline_name = f"MiniStack {ministack_version(ministack_python())}"
    ours: list[KinesisRun] = []
    theirs: list[KinesisRun] = []
    loads: list[str] = []
    broker = bench_broker_pid(context.scratch)
    with (
        tidelake_serve(
            context.bootstrap_servers, context.scratch / "lake", context.scratch / "serve"
        ) as serve,
        ministack_server(context.scratch / "ministack") as ministack,
    ):
        for _ in range(ROUNDS):  # alternated, so a burst of load on the shared machine hits both
            loads.append(load_average())
            theirs.append(_one_run(baseline_name, ministack, batches))
            ours.append(_one_run("tidelake serve", serve, batches, broker))
    loads.append(load_average())
    put_ours, put_theirs = min(r.put_s for r in ours), min(r.put_s for r in theirs)
    get_ours, get_theirs = min(r.get_s for r in ours), min(r.get_s for r in theirs)
    retried = sum(r.retried for r in ours), sum(r.retried for r in theirs)
    best = {
        side: (min(runs, key=lambda r: r.put_s), min(runs, key=lambda r: r.get_s))
        for side, runs in (("ours", ours), ("theirs", theirs))
    }

    def server_cpu(phase: int) -> str:  # CPU seconds of the best runs: serve + broker, MiniStack
        ours_cpu = getattr(best["ours"][phase], ("put_cpu", "get_cpu")[phase])
        theirs_cpu = getattr(best["theirs"][phase], ("put_cpu", "get_cpu")[phase])
        return f"{ours_cpu[1]:.1f}+{ours_cpu[2]:.1f}/{theirs_cpu[1]:.1f}"

    notes = (
        f"{count:,} records of ~215 B, {SHARDS} shards, boto3, {PUT_BATCH} a PutRecords call, GetRecords "
        f"Limit {GET_LIMIT:,}, one client, all records back on both sides, retried {retried[0]}/{retried[1]}; "
        f"best of {ROUNDS} alternated runs; server CPU s serve+Kafka/MiniStack put {server_cpu(0)}, "
        f"get {server_cpu(1)}; load avg {loads[0]} -> {loads[-1]}"
    )
    return [
        Comparison("kinesis", "PutRecords", "records/s", count / put_ours, count / put_theirs, baseline_name,
                   goal=GOAL, notes=notes),
        Comparison("kinesis", "GetRecords", "records/s", count / get_ours, count / get_theirs, baseline_name,
                   goal=GOAL, notes=notes),
    ]  # fmt: skip


__all__ = ["run"]
