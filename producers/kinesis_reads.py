"""GetRecords over Kafka: one shard's records from an offset, read with Kafka's own Fetch request and
shaped as AWS answers them.

`ShardReader` sends Fetch and ListOffsets requests for one partition at a time on an aiokafka
client (on the clients' loop, `producers.kinesis_kafka`) and reads the record batches with aiokafka's
compiled reader, building each record's JSON as it goes: no consumer, no assignment, no record
object in between. A GetRecords call is one Fetch in the common case; its answer also says where
the shard ends and where it begins, so the call needs no ListOffsets (only an offset out of range
does: then the read starts from the first offset retention left, as TRIM_HORIZON does, or from
the end).

`read(tp, offset, limit, budget_s)`:
- reads under read_committed: the shard ends at the last stable offset, so an open transaction's
  records wait, and the records of aborted transactions are skipped (with the fetch's list of
  aborted transactions, as Kafka's consumers do), as are transaction markers;
- returns at most `limit` records and about `MAX_GET_BYTES` of data and keys (the record that
  passes it is left for the next call; a first record larger than that is still returned), ending
  early at the end of the shard or when `budget_s` is spent;
- `next_offset` is where the next call reads: after the last record returned, or past transaction
  markers and aborted records when only those were left.

Each record's JSON: `SequenceNumber`, `ApproximateArrivalTimestamp` (epoch seconds, the Kafka
record's timestamp), `Data` (base64) and `PartitionKey` (the Kafka key, when there is one).
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.memory_records import MemoryRecords

from producers.kinesis_requests import MAX_GET_BYTES
from producers.kinesis_sequence import sequence_number

#: The latest record time Kafka's ListOffsets takes (int64 milliseconds, less a margin).
MAX_TIMESTAMP_MS = 2**62
#: ListOffsets' special times: the first offset retention left, and the end.
EARLIEST, LATEST = -2, -1
#: Kafka's isolation level read_committed (Fetch and ListOffsets).
READ_COMMITTED = 1
#: What one Fetch may bring back from its partition (Kafka returns a whole first batch even when
#: it is larger, so a record of any size is read). 10,000 records of ~200 bytes of JSON take
#: 0.35 MiB as lz4 batches; 1 MiB and 4 MiB read 50,000 records in the same time.
FETCH_BYTES = 4 * 1024 * 1024
#: Errors after which the partition's leader is looked up again and the request sent once more.
_STALE_LEADER = (
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.LeaderNotAvailableError,
    kafka_errors.UnknownTopicOrPartitionError,
    kafka_errors.KafkaStorageError,
    kafka_errors.NodeNotReadyError,
)


@dataclass
class ShardRead:
    """What one GetRecords read: the records' JSON, where to read next, where the shard ended
    (its last stable offset when last asked), the bytes of data and keys returned, the last
    record's timestamp (ms), and whether the byte cap ended it."""

    records: list[dict[str, Any]]
    next_offset: int
    end: int
    size: int
    last_timestamp_ms: int | None
    full: bool = False

    def answers(self, limit: int, end_now: int | None = None) -> bool:
        """Whether a read made earlier is what a read now, with `limit`, would return: one that
        stopped short of the shard's end (what it holds is committed and cannot change) at `limit`
        records or at the byte cap below it; or one that read to the end, when the shard still
        ends there (`end_now`) and it holds no more than `limit` records."""
        count = len(self.records)
        if self.next_offset >= self.end:
            return end_now == self.end and count <= limit
        return count == limit or (self.full and count < limit)

    @property
    def at_end(self) -> bool:
        return self.next_offset >= self.end


@dataclass
class _Fetched:
    end: int  # the last stable offset (the high watermark if the broker did not say)
    begin: int  # the log start offset (-1 if the broker did not say)
    aborted: list[tuple[int, int]]  # (producer id, first offset) of aborted transactions
    records: MemoryRecords


class ShardReader:
    """Reads partitions through `client` (an aiokafka client whose loop runs the coroutines)."""

    def __init__(self, client: AIOKafkaClient, *, check_crcs: bool = True) -> None:
        self.client = client
        # The broker checks every batch's CRC when it is produced; checking again here catches a
        # batch damaged on disk since. It costs 0.24 ms per 10,000 records of ~200 bytes (lz4),
        # under 1% of a read: kept.
        self.check_crcs = check_crcs

    async def _leader(self, tp: TopicPartition, refresh: bool = False) -> int:
        if refresh:
            await self.client.force_metadata_update()
        node = self.client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            if not refresh:
                return await self._leader(tp, refresh=True)
            raise kafka_errors.UnknownTopicOrPartitionError(tp)
        return node

    async def _send(self, tp: TopicPartition, request: Any, refresh: bool) -> Any:
        """`request` to the partition's leader (looked up again first with `refresh`); once more
        after a refresh when the leader moved or the client did not know it."""
        try:
            return await self.client.send(await self._leader(tp, refresh), request)
        except _STALE_LEADER:
            if refresh:
                raise
        return await self.client.send(await self._leader(tp, True), request)

    async def list_offset(self, tp: TopicPartition, timestamp: int) -> int:
        """The offset of the first record at or after `timestamp` (ms; EARLIEST, LATEST); -1 when
        no record is that late."""
        for attempt in range(2):
            request = OffsetRequest(-1, READ_COMMITTED, [(tp.topic, [(tp.partition, timestamp)])])
            response = await self._send(tp, request, refresh=attempt > 0)
            for _topic, partitions in response.topics:
                for _partition, error_code, *info in partitions:
                    error = kafka_errors.for_code(error_code)
                    if error is kafka_errors.NoError:
                        return int(info[-1])
                    if attempt or not issubclass(error, _STALE_LEADER):
                        raise error(tp)
        raise kafka_errors.UnknownTopicOrPartitionError(tp)

    async def offset_at(self, tp: TopicPartition, timestamp_ms: int | None) -> int:
        """The offset of the first record at or after `timestamp_ms` (the shard's end when no
        record is that late); with None, the shard's end (LATEST)."""
        if timestamp_ms is not None:
            found = await self.list_offset(tp, min(max(0, timestamp_ms), MAX_TIMESTAMP_MS))
            if found >= 0:
                return found
        return await self.list_offset(tp, LATEST)

    async def _fetch(self, tp: TopicPartition, offset: int) -> _Fetched:
        """One Fetch of the partition from `offset`; OffsetOutOfRangeError as the broker says."""
        for attempt in range(2):
            request = FetchRequest(
                0, 1, FETCH_BYTES, READ_COMMITTED, [(tp.topic, [(tp.partition, offset, FETCH_BYTES)])]
            )
            response = await self._send(tp, request, refresh=attempt > 0)
            version = response.API_VERSION
            if version >= 7 and response.error_code:
                raise kafka_errors.for_code(response.error_code)(tp)
            for _topic, partitions in response.topics:
                for part in partitions:
                    error = kafka_errors.for_code(part[1])
                    if error is not kafka_errors.NoError:
                        if attempt or not issubclass(error, _STALE_LEADER):
                            raise error(tp)
                        break
                    # (partition, error, high watermark, last stable offset, [log start offset]
                    # from v5, aborted transactions, [preferred read replica] from v11, records)
                    highwater, stable = part[2], part[3]
                    begin = part[4] if version >= 5 else -1
                    aborted = part[-3] if version >= 11 else part[-2]
                    end = stable if stable >= 0 else highwater
                    return _Fetched(
                        end, begin, sorted(aborted or [], key=lambda a: a[1]), MemoryRecords(part[-1] or b"")
                    )
        raise kafka_errors.UnknownTopicOrPartitionError(tp)

    async def read(self, tp: TopicPartition, offset: int, limit: int, budget_s: float) -> ShardRead:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_s
        try:
            fetched = await self._fetch(tp, offset)
        except kafka_errors.OffsetOutOfRangeError:
            # before the first offset retention left, or past the end: start from whichever is nearer
            begin, end = await asyncio.gather(self.list_offset(tp, EARLIEST), self.list_offset(tp, LATEST))
            offset = min(max(offset, begin), end)
            if offset >= end:
                return ShardRead([], offset, end, 0, None)
            fetched = await self._fetch(tp, offset)
        end = fetched.end
        next_offset = min(max(offset, fetched.begin), end)
        out: list[dict[str, Any]] = []
        append = out.append
        base = int(sequence_number(tp.partition, 0))
        b64 = binascii.b2a_base64
        size = returned = 0
        last_ts: int | None = None
        while True:
            records, aborted, aborted_producers = fetched.records, fetched.aborted, set()
            full = False
            while not full and len(out) < limit:
                batch = records.next_batch()
                if batch is None:
                    break
                if self.check_crcs and not batch.validate_crc():
                    raise kafka_errors.CorruptRecordException(f"Invalid CRC - {tp}")
                # read_committed, as aiokafka's consumer reads it (consumer.fetcher.PartitionRecords)
                while aborted and aborted[0][1] <= batch.base_offset:
                    aborted_producers.add(aborted.pop(0)[0])
                if batch.is_control_batch:
                    if _is_abort_marker(batch):
                        aborted_producers.discard(batch.producer_id)
                    next_offset = max(next_offset, batch.next_offset)
                    continue
                if batch.is_transactional and batch.producer_id in aborted_producers:
                    next_offset = max(next_offset, batch.next_offset)
                    continue
                for record in batch:
                    record_offset = record.offset
                    if record_offset < next_offset:  # a batch that began before the offset asked
                        continue
                    value, key = record.value or b"", record.key
                    size += len(value) + (len(key) if key else 0)
                    if out and size > MAX_GET_BYTES:
                        full = True
                        break
                    entry = {
                        "SequenceNumber": str(base + record_offset),
                        "ApproximateArrivalTimestamp": record.timestamp / 1000,
                        "Data": b64(value, newline=False).decode("ascii"),
                    }
                    if key:
                        entry["PartitionKey"] = key.decode("utf-8", "replace")
                    append(entry)
                    returned, last_ts, next_offset = size, record.timestamp, record_offset + 1
                    if len(out) >= limit:
                        break
                else:
                    next_offset = max(next_offset, batch.next_offset)
            if full or len(out) >= limit or next_offset >= end or loop.time() >= deadline:
                break
            fetched = await self._fetch(tp, next_offset)
            end = max(end, fetched.end)
            if fetched.records.size_in_bytes() == 0:
                break  # nothing more to read now
        return ShardRead(out, next_offset, end, returned, last_ts, full)


def _is_abort_marker(batch: Any) -> bool:
    try:
        control = next(batch)
    except StopIteration:
        return False
    return bool(ControlRecord.parse(control.key) == ABORT_MARKER)


class ReadAhead:
    """The next page of shards being read through in pages, read while the caller takes in the
    page it has: a consumer catching up on a shard asks for the page after the one it got, so
    that page is fetched and built as soon as the answer leaves (as Kafka's own consumers fetch
    ahead), and the next call only answers.

    A page is read ahead only after a page that stopped short of the shard's end, and is given
    to a call only if it `answers` that call (the same offset and a limit it meets; records below
    the last stable offset never change, and a page that read to the end is given only while
    the shard still ends there), so the caller gets what a read then would have returned. Pages older than `ttl_s`, or of a deleted stream, are dropped. At most
    `max_pages` are kept; `max_bytes` bounds the page a read-ahead follows.
    """

    def __init__(self, max_pages: int, *, ttl_s: float = 10.0, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.max_pages = max_pages
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._pages: dict[tuple[str, int, int], tuple[float, concurrent.futures.Future[ShardRead]]] = {}
        self._lock = threading.Lock()

    def wanted(self, read: ShardRead) -> bool:
        """Whether the page after `read` is worth reading ahead."""
        return bool(read.records) and read.next_offset < read.end and read.size <= self.max_bytes

    def put(self, tp: TopicPartition, offset: int, page: concurrent.futures.Future[ShardRead]) -> None:
        now = time.monotonic()
        with self._lock:
            self._drop_expired(now)
            while len(self._pages) >= self.max_pages:
                oldest = min(self._pages, key=lambda k: self._pages[k][0])
                self._pages.pop(oldest)[1].cancel()
            self._pages[(tp.topic, tp.partition, offset)] = (now, page)

    def take(self, tp: TopicPartition, offset: int) -> concurrent.futures.Future[ShardRead] | None:
        """The page read ahead at `offset`, if any (it is not kept: a reused iterator reads again)."""
        with self._lock:
            self._drop_expired(time.monotonic())
            found = self._pages.pop((tp.topic, tp.partition, offset), None)
        return found[1] if found is not None else None

    def forget(self, stream: str | None = None) -> None:
        """Drop the pages of `stream` (all with None)."""
        with self._lock:
            for key in [k for k in self._pages if stream is None or k[0] == stream]:
                self._pages.pop(key)[1].cancel()

    def _drop_expired(self, now: float) -> None:
        for key in [k for k, (made, _) in self._pages.items() if now - made > self.ttl_s]:
            self._pages.pop(key)[1].cancel()
