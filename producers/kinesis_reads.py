"""GetRecords over Kafka: one shard's records from an offset, and their JSON as AWS shapes it.

`read_shard(consumer, tp, offset, limit, budget_s)` runs on the clients' loop
(`producers.kinesis_kafka`) with a pooled aiokafka consumer, assigned the one partition:

- it seeks to the iterator's offset at once, so the fetch goes out beside the two ListOffsets
  requests that bound the read: the first offset retention left (an older offset reads from
  there, as TRIM_HORIZON does) and the end, which under read_committed is the last stable offset,
  so an open transaction's records wait and an aborted one's are never returned;
- it returns at most `limit` records and about `MAX_GET_BYTES` of data and keys (the record that
  passes it is left for the next call; a first record larger than that is still returned), ending
  early at the end of the shard or when `budget_s` is spent;
- `next_offset` is where the next call reads: after the last record returned, or past transaction
  markers and aborted records when only those were left;
- the consumer is paused before it goes back to the pool, so it fetches nothing while idle.

`records_json` shapes the answer's records (`SequenceNumber`, `ApproximateArrivalTimestamp` in epoch
seconds, `Data` as base64, `PartitionKey`) in the request thread.
"""

from __future__ import annotations

import asyncio
import binascii
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from producers.kinesis_requests import MAX_GET_BYTES
from producers.kinesis_sequence import sequence_number

#: MAX_TIMESTAMP_MS: the latest record time Kafka's ListOffsets takes (int64 milliseconds, less a margin).
MAX_TIMESTAMP_MS = 2**62


@dataclass
class ShardRead:
    """What one GetRecords read: aiokafka's records, where to read next, the shard's end (the last
    stable offset when the read began) and the bytes of data and keys returned."""

    records: list[Any]
    next_offset: int
    end: int
    size: int


async def read_shard(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, limit: int, budget_s: float
) -> ShardRead:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    consumer.assign([tp])
    consumer.seek(tp, offset)  # the fetch starts now, beside the offset lookups
    try:
        begins, ends = await asyncio.gather(consumer.beginning_offsets([tp]), consumer.end_offsets([tp]))
        begin, end = begins[tp], ends[tp]
        next_offset = min(max(offset, begin), end)
        records: list[Any] = []
        size = returned = 0
        if next_offset < end:
            if next_offset != offset:
                consumer.seek(tp, next_offset)
            while len(records) < limit and next_offset < end and loop.time() < deadline:
                wait_ms = max(1, min(100, int((deadline - loop.time()) * 1000)))
                batch = (
                    await consumer.getmany(tp, timeout_ms=wait_ms, max_records=limit - len(records))
                ).get(tp, [])
                full = False
                for record in batch:
                    size += len(record.value or b"") + len(record.key or b"")
                    if records and size > MAX_GET_BYTES:
                        full = True
                        break
                    records.append(record)
                    returned = size
                    next_offset = record.offset + 1
                if full:
                    break
                if not batch:  # only transaction markers or aborted records may be left
                    next_offset = max(next_offset, min(await consumer.position(tp), end))
        return ShardRead(records, next_offset, end, returned)
    finally:
        consumer.pause(tp)


async def offset_at(consumer: AIOKafkaConsumer, tp: TopicPartition, timestamp_ms: int | None) -> int:
    """The offset of the first record at or after `timestamp_ms` (the shard's end when none is);
    with None, the shard's end (LATEST)."""
    if timestamp_ms is not None:
        wanted = min(max(0, timestamp_ms), MAX_TIMESTAMP_MS)
        found = (await consumer.offsets_for_times({tp: wanted}))[tp]
        if found is not None:
            return found.offset
    return (await consumer.end_offsets([tp]))[tp]


def records_json(partition: int, records: list[Any]) -> list[dict[str, Any]]:
    """The `Records` of a GetRecords answer for aiokafka's records of `partition`."""
    base = int(sequence_number(partition, 0))
    b64 = binascii.b2a_base64
    out: list[dict[str, Any]] = []
    append = out.append
    for record in records:
        entry = {
            "SequenceNumber": str(base + record.offset),
            "ApproximateArrivalTimestamp": record.timestamp / 1000,
            "Data": b64(record.value or b"", newline=False).decode("ascii"),
        }
        if record.key:
            entry["PartitionKey"] = record.key.decode("utf-8", "replace")
        append(entry)
    return out
