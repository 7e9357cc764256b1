"""PutRecord(s) over Kafka: each record to the partition of its shard, one record batch per shard.

`put_records(clients, stream, records, shards, quotas, now)` puts a call's records (already
decoded and within AWS's limits) and returns one result per record, in order: `SequenceNumber`
and `ShardId`, or `ErrorCode` and `ErrorMessage`:

- a record's shard is the one whose hash-key range holds its hash key (`producers.kinesis_shards`:
  the MD5 of its partition key, or its `ExplicitHashKey`); its partition is that shard's;
- with quotas, a record its shard has no room for is not sent: ProvisionedThroughputExceeded;
- the others go to Kafka as they are (the partition key is the Kafka key), a batch per shard
  built in the calling thread and sent whole (`AIOKafkaProducer.send_batch`): the records of a
  shard keep their order, and a record's offset is its batch's base offset plus its place in it;
- a batch Kafka does not acknowledge in time fails its records with InternalFailure (PutRecords is
  not atomic); the others keep their sequence numbers.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AioKafkaError

from producers.kinesis_errors import ACCOUNT_ID, invalid
from producers.kinesis_kafka import KafkaClients
from producers.kinesis_quotas import THROTTLED, ShardQuotas, write_throttled_message
from producers.kinesis_sequence import sequence_number
from producers.kinesis_shards import hash_key_ranges, parse_hash_key
from producers.kinesis_shards import shard_id as shard_name

#: A record to put: (data, partition key, ExplicitHashKey or None).
Record = tuple[bytes, str, str | None]
#: A failed record's result as AWS words it.
INTERNAL_FAILURE = {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Service Failure"}

log = logging.getLogger(__name__)


#: MD5 hash keys of recent partition keys (producers reuse theirs: a visitor, a device): a dict
#: lookup instead of a digest. Emptied when it holds `_HASH_CACHE_SIZE` keys.
_hash_cache: dict[str, int] = {}
_HASH_CACHE_SIZE = 65_536


def shard_partitions(records: list[Record], shards: int) -> list[int]:
    """The partition of each record (`producers.kinesis_shards`' rule, done once per call);
    InvalidArgumentException for an ExplicitHashKey outside [0, 2^128 - 1]."""
    starts = [r.start for r in hash_key_ranges(shards)]
    md5 = hashlib.md5
    find = bisect.bisect_right
    cache = _hash_cache
    if len(cache) > _HASH_CACHE_SIZE:
        cache.clear()
    partitions = []
    for _, key, explicit in records:
        if explicit is None:
            hash_key = cache.get(key)
            if hash_key is None:
                hash_key = cache[key] = int.from_bytes(md5(key.encode("utf-8")).digest(), "big")
        else:
            parsed = parse_hash_key(explicit)
            if parsed is None:
                msg = f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {explicit}"
                raise invalid(msg)
            hash_key = parsed
        partitions.append(find(starts, hash_key) - 1)
    return partitions


class _Batch:
    """A shard's batch of one call: the records' places in the call, in batch order."""

    __slots__ = ("builder", "partition", "places")

    def __init__(self, builder: Any, partition: int) -> None:
        self.builder = builder
        self.partition = partition
        self.places: list[int] = []


def put_records(
    clients: KafkaClients,
    stream: str,
    records: list[Record],
    shards: int,
    quotas: ShardQuotas | None,
    now: float,
) -> list[dict[str, str]]:
    """Put `records` into `stream`'s topic; one result per record, in order."""
    partitions = shard_partitions(records, shards)
    results: list[dict[str, str] | None] = [None] * len(records)
    producer = clients.producer()
    batches: list[_Batch] = []
    open_batches: dict[int, _Batch] = {}
    for place, ((data, key, _), partition) in enumerate(zip(records, partitions, strict=True)):
        key_bytes = key.encode("utf-8")
        if quotas is not None and not quotas.admit_write(stream, partition, len(data) + len(key_bytes), now):
            results[place] = {
                "ErrorCode": THROTTLED,
                "ErrorMessage": write_throttled_message(stream, partition, ACCOUNT_ID),
            }
            continue
        batch = open_batches.get(partition)
        if batch is None or batch.builder.append(timestamp=None, key=key_bytes, value=data) is None:
            batch = _Batch(producer.create_batch(), partition)  # the first record always fits
            batch.builder.append(timestamp=None, key=key_bytes, value=data)
            open_batches[partition] = batch
            batches.append(batch)
        batch.places.append(place)
    if batches:
        offsets = clients.run(_send(producer, stream, batches, clients.timeout_s))
        for batch, base in zip(batches, offsets, strict=True):
            shard = shard_name(batch.partition)
            if base is None:
                for place in batch.places:
                    results[place] = dict(INTERNAL_FAILURE)
                continue
            first = int(sequence_number(batch.partition, base))  # the batch's records follow it
            for index, place in enumerate(batch.places):
                results[place] = {"SequenceNumber": str(first + index), "ShardId": shard}
    return [r if r is not None else dict(INTERNAL_FAILURE) for r in results]


async def _send(
    producer: AIOKafkaProducer, topic: str, batches: list[_Batch], timeout_s: float
) -> list[int | None]:
    """Send every batch; each one's base offset, or None when Kafka did not take it in time."""
    known = producer.client.cluster.partitions_for_topic(topic) or set()
    if any(b.partition not in known for b in batches):  # a stream new to the producer, or remade
        await asyncio.wait_for(producer.client.force_metadata_update(), timeout_s)
    futures: list[asyncio.Future[Any] | None] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    for batch in batches:
        batch.builder.close()
        try:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            futures.append(
                await asyncio.wait_for(
                    producer.send_batch(batch.builder, topic, partition=batch.partition), remaining
                )
            )
        except (AioKafkaError, AssertionError, TimeoutError) as exc:
            log.warning(
                "a batch for %s[%d] was not accepted by the producer: %r", topic, batch.partition, exc
            )
            futures.append(None)
    pending = [f for f in futures if f is not None]
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
    offsets: list[int | None] = []
    for batch, future in zip(batches, futures, strict=True):
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            if future is not None and future.done() and not future.cancelled():
                log.warning(
                    "a batch to %s[%d] was not acknowledged: %r", topic, batch.partition, future.exception()
                )
            offsets.append(None)
            continue
        offsets.append(future.result().offset)
    return offsets
