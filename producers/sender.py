"""Batched, idempotent sends to one topic and its dead-letter topic (aiokafka's batch API).

Records are appended straight into one open batch per partition (aiokafka's C record builder), so
a send costs an append, not a future per record. Keys pick the partition with Kafka's murmur2,
like every other client in the pipeline (faust, kafka-python), so stream apps see the same keys
together; records without a key fill one partition's batch at a time (sticky, like Kafka's default).

Producer settings, like a Kinesis Producer Library configuration: idempotent, acks=all,
`linger_ms` / `batch_bytes` from the producer settings, zstd by default (aiokafka compresses
lz4 at level 9, five times slower than zstd level 3 here). A batch waits for its partition's
leader up to `delivery_timeout_ms` (Kafka's delivery.timeout.ms, 120 s), so a broker restart
delays a replay instead of failing it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from core.admin import START_HINT
from core.errors import BrokerUnavailable
from core.settings import Settings
from core.topics import dlq_topic
from producers.records import Reject

#: Headroom for batch framing over the largest record.
_REQUEST_OVERHEAD_BYTES = 64 * 1024
_NO_HEADERS: list = []  # the C record builder wants a list; never mutated


@dataclass
class SendCounts:
    sent: int = 0
    rejected: int = 0


class BatchSender:
    """Appends records to per-partition batches of one topic; rejects go to `<topic>.dlq`.

    Use as `async with BatchSender(settings, topic) as sender:`; leaving the block flushes.
    """

    def __init__(self, settings: Settings, topic: str, *, client_id: str = "tidelake-producer") -> None:
        self.settings = settings
        self.topic = topic
        self.dlq = dlq_topic(topic)
        self.counts = SendCounts()
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitions: list[int] = []
        self._key_partition: dict[bytes, int] = {}
        self._batches: dict[int, object] = {}
        self._batch_started: dict[int, float] = {}
        self._pending: list[asyncio.Future] = []
        self._sticky = itertools.cycle([0])
        self._sticky_partition = 0
        self._max_record_bytes = settings.producer.max_record_bytes

    async def __aenter__(self) -> BatchSender:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None or issubclass(exc_info[0], asyncio.CancelledError | KeyboardInterrupt):  # type: ignore[arg-type]
                await self.flush()
        finally:
            await self.stop()

    async def start(self) -> None:
        config = self.settings.producer
        bootstrap = self.settings.kafka.bootstrap_servers
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=config.linger_ms,
            max_batch_size=config.batch_bytes,
            max_request_size=max(config.batch_bytes, config.max_record_bytes) + _REQUEST_OVERHEAD_BYTES,
            compression_type=None if config.compression == "none" else config.compression,
            # aiokafka fails a batch whose partition has no leader (as while a restarted broker comes
            # back) once the batch is older than the request timeout; Kafka's producer allows
            # delivery.timeout.ms (120 s) for that, which rides out a restart.
            request_timeout_ms=max(self.settings.kafka.request_timeout_ms, config.delivery_timeout_ms),
        )
        try:
            await self._producer.start()
            partitions = await self._producer.partitions_for(self.topic)
        except KafkaError as exc:
            await self._producer.stop()
            msg = f"cannot produce to {self.topic!r} at {bootstrap} ({exc.__class__.__name__}: {exc}); {START_HINT}"
            raise BrokerUnavailable(msg) from exc
        self._partitions = sorted(partitions)
        self._sticky = itertools.cycle(self._partitions)
        self._sticky_partition = next(self._sticky)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def _client(self) -> AIOKafkaProducer:
        if self._producer is None:
            msg = "the sender is not started; use `async with BatchSender(...)`"
            raise RuntimeError(msg)
        return self._producer

    @property
    def partition_count(self) -> int:
        return len(self._partitions)

    def partition_for(self, key: bytes | None) -> int:
        """Kafka's default partition of a key (murmur2), memoised per key; sticky for no key."""
        if key is None:
            return self._sticky_partition
        partition = self._key_partition.get(key)
        if partition is None:
            partition = self._partitions[(murmur2(key) & 0x7FFFFFFF) % len(self._partitions)]
            if len(self._key_partition) < 1_000_000:
                self._key_partition[key] = partition
        return partition

    def fits(self, key: bytes | None, value: bytes) -> bool:
        """Whether a record is within the record size limit (callers send the others to the DLQ)."""
        return len(value) + (len(key) if key else 0) <= self._max_record_bytes

    async def send(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Append one record (checked with `fits` first); a batch that fills up goes to the producer."""
        partition = self.partition_for(key)
        batch = self._batches.get(partition)
        if batch is None:
            batch = self._new_batch(partition)
        if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:  # type: ignore[attr-defined]
            await self._submit(partition)
            batch = self._new_batch(partition)
            batch.append(timestamp=None, key=key, value=value, headers=headers or [])
        self.counts.sent += 1

    async def send_many(self, keyed_values: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Append many records that `fit` (the hot path of replay); same rules as `send`."""
        batches = self._batches
        partition_for = self.partition_for
        for key, value in keyed_values:
            partition = partition_for(key)
            batch = batches.get(partition)
            if batch is None:
                batch = self._new_batch(partition)
            if batch.append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:  # type: ignore[attr-defined]
                await self._submit(partition)
                batch = self._new_batch(partition)
                batch.append(timestamp=None, key=key, value=value, headers=_NO_HEADERS)
        self.counts.sent += len(keyed_values)

    async def send_reject(self, reject: Reject) -> None:
        """The raw line to the DLQ with headers that say why and where it came from."""
        try:
            process = self._client_id.removeprefix("tidelake-")  # replay, agent
            future = await self._client.send(self.dlq, reject.raw, headers=reject.headers(process))
        except KafkaError as exc:
            msg = f"cannot write to the dead-letter topic {self.dlq!r}: {exc}; create it or check the broker"
            raise BrokerUnavailable(msg) from exc
        self._pending.append(future)
        self.counts.rejected += 1

    def _new_batch(self, partition: int):
        batch = self._client.create_batch()
        self._batches[partition] = batch
        self._batch_started[partition] = time.monotonic()
        return batch

    async def _submit(self, partition: int) -> None:
        batch = self._batches.pop(partition)
        self._batch_started.pop(partition, None)
        if batch.record_count() == 0:  # type: ignore[attr-defined]
            return
        try:
            future = await self._client.send_batch(batch, self.topic, partition=partition)
        except KafkaError as exc:
            msg = f"cannot hand a batch for {self.topic}[{partition}] to the producer: {exc}; {START_HINT}"
            raise BrokerUnavailable(msg) from exc
        self._pending.append(future)
        if partition == self._sticky_partition:
            self._sticky_partition = next(self._sticky)
        if len(self._pending) > 256:  # drop acknowledged batches; stop early on a refused one
            failed = [
                f for f in self._pending if f.done() and not f.cancelled() and f.exception() is not None
            ]
            if failed:
                await self.flush()  # raises BrokerUnavailable naming the failure
            self._pending = [f for f in self._pending if not f.done()]

    async def submit_open(self, older_than_s: float = 0.0) -> None:
        """Hand every open batch (or those open longer than `older_than_s`) to the producer."""
        now = time.monotonic()
        for partition in list(self._batches):
            if now - self._batch_started.get(partition, now) >= older_than_s:
                await self._submit(partition)

    async def flush(self) -> None:
        """Send every open batch and wait until the broker has acknowledged all of them."""
        await self.submit_open()
        pending, self._pending = self._pending, []
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            msg = (
                f"{len(failures)} of {len(results)} batches to {self.topic!r} were not acknowledged "
                f"({first.__class__.__name__}: {first}); nothing was committed as sent, run again"
            )
            raise BrokerUnavailable(msg) from first
