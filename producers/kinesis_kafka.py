"""The Kafka clients behind the Kinesis actions: one producer, a bounded pool of consumers and an
admin client, shared by every request thread.

The actions run in serve's thread pool and block on Kafka. Records go in and out through aiokafka,
whose record batches are built and read by compiled code (its `_crecords` extension): PutRecords
builds one batch per shard (`create_batch`/`send_batch`) and GetRecords decodes a fetch about ten
times faster than kafka-python's pure-Python reader, which had most of serve's CPU. aiokafka is
asyncio, so its clients live on one event loop in a thread of their own (`KafkaClients.run` hands it
a coroutine and waits); the request threads never touch them directly. Topic administration
(create, describe, delete, configs) stays with kafka-python's admin client: it is not on a hot path.

No client here ever makes a topic: tidelake's broker runs with auto.create.topics.enable, which
makes any topic a metadata request names, and aiokafka names the topics it tracks (a stream just
deleted, on its next refresh). Their metadata requests therefore always ask for every topic
(`_AllTopicsClient`), which never creates one; Kinesis makes a stream only by CreateStream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError as AioKafkaError
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from core.aws_json import AwsError
from producers.kinesis_errors import internal, unavailable
from producers.kinesis_requests import MAX_GET_BYTES, MAX_REQUEST_BYTES

_T = TypeVar("_T")

#: A batch of PutRecords for one shard holds at most this much before the next batch starts (a
#: larger record has a batch of its own); a call's 500 records of ~200 bytes fit one per shard.
BATCH_BYTES = 256 * 1024
#: What one GetRecords fetch may bring back from its partition: a call's 10 MiB at most.
PARTITION_FETCH_BYTES = MAX_GET_BYTES + 1024 * 1024


class _AllTopicsClient(AIOKafkaClient):
    """aiokafka's client, whose metadata requests name no topic (all topics are described): a
    request that names a missing topic makes it where the broker auto-creates topics."""

    async def _metadata_update(self, cluster_metadata: Any, topics: Any) -> bool:
        return await super()._metadata_update(cluster_metadata, None)


class KafkaClients:
    """The clients of one KinesisService; thread-safe. `close()` sends what the producer holds and
    closes every client. The aiokafka clients are made on first use, so a service made without a
    broker (or never asked to put or read) starts no thread and opens no connection."""

    def __init__(
        self, bootstrap_servers: str, *, client_id: str, timeout_s: float, max_consumers: int
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._idle: list[AIOKafkaConsumer] = []
        self._pool_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_consumers)
        self._admin_client: KafkaAdminClient | None = None
        self._admin_lock = threading.Lock()
        self.closed = False

    # -- the loop --------------------------------------------------------------------------------
    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self.closed:
                raise internal("the Kinesis service is closing")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"{self.client_id}-kafka", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout_s: float | None = None) -> _T:
        """Run `coroutine` on the clients' loop and return its result. It should bound its own
        waits; past `timeout_s` (default: twice the service's timeout) it is cancelled and the
        call is InternalFailure."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout_s if timeout_s is not None else 2 * self.timeout_s + 5)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise internal("Kafka did not answer in time") from exc

    # -- clients ---------------------------------------------------------------------------------
    def producer(self) -> AIOKafkaProducer:
        """The one idempotent producer (acks=all, lz4), started on first use."""
        with self._producer_lock:
            if self._producer is None:
                self._producer = self.run(self._start_producer())
            return self._producer

    async def _start_producer(self) -> AIOKafkaProducer:
        timeout_ms = int(self.timeout_s * 1000)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            max_batch_size=BATCH_BYTES,
            linger_ms=0,  # each call's batches are closed when sent: nothing waits for more
            max_request_size=MAX_REQUEST_BYTES + 1024 * 1024,
            request_timeout_ms=timeout_ms,
        )
        producer.client.__class__ = _AllTopicsClient
        try:
            await asyncio.wait_for(producer.start(), self.timeout_s)
        except (AioKafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            raise unavailable(self.bootstrap_servers, exc) from exc
        return producer

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",  # records of aborted transactions are never returned
            auto_offset_reset="earliest",  # an offset retention deleted reads from the first one left
            fetch_max_wait_ms=50,
            fetch_max_bytes=PARTITION_FETCH_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        consumer._client.__class__ = _AllTopicsClient
        try:
            await asyncio.wait_for(consumer.start(), self.timeout_s)
        except (AioKafkaError, OSError, TimeoutError) as exc:
            await consumer.stop()
            raise unavailable(self.bootstrap_servers, exc) from exc
        return consumer

    @contextlib.contextmanager
    def consumer(self) -> Iterator[AIOKafkaConsumer]:
        """A consumer of the pool for this thread alone, used through `run`; at most
        `max_consumers` exist. A consumer whose block raised is closed, not pooled."""
        if not self._slots.acquire(timeout=self.timeout_s):
            raise AwsError("InternalFailureException", "every reader is busy; try again", 500)
        try:
            with self._pool_lock:
                consumer = self._idle.pop() if self._idle else None
            if consumer is None:
                consumer = self.run(self._start_consumer())
            healthy = False
            try:
                yield consumer
                healthy = True
            finally:
                if healthy and not self.closed:
                    with self._pool_lock:
                        self._idle.append(consumer)
                else:
                    with contextlib.suppress(Exception):
                        self.run(consumer.stop(), self.timeout_s)
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def admin(self) -> Iterator[KafkaAdminClient]:
        """The one admin client, for this thread alone while the block runs; dropped (and made
        again next time) after a Kafka error, which becomes InternalFailure."""
        with self._admin_lock:
            try:
                if self._admin_client is None:
                    self._admin_client = KafkaAdminClient(
                        bootstrap_servers=self.bootstrap_servers,
                        bootstrap_timeout_ms=int(self.timeout_s * 1000),
                        client_id=self.client_id,
                        request_timeout_ms=int(self.timeout_s * 1000),
                    )
                yield self._admin_client
            except KafkaError as exc:
                if self._admin_client is not None:
                    self._admin_client.close()
                    self._admin_client = None
                if isinstance(exc, UnknownTopicOrPartitionError):
                    raise
                raise unavailable(self.bootstrap_servers, exc) from exc

    def close(self) -> None:
        """Send what the producer holds, close every client and stop the loop."""
        with self._loop_lock:
            self.closed = True
            loop, thread = self._loop, self._thread
        with self._pool_lock:
            idle, self._idle = self._idle, []
        if loop is not None:
            stops = [c.stop() for c in idle]
            if self._producer is not None:
                stops.append(self._producer.stop())
                self._producer = None
            if stops:
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(_gather(stops), loop).result(self.timeout_s + 5)
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(self.timeout_s)
            if thread is None or not thread.is_alive():
                loop.close()
        with self._admin_lock:
            if self._admin_client is not None:
                self._admin_client.close()
                self._admin_client = None


async def _gather(coroutines: list[Coroutine[Any, Any, Any]]) -> None:
    await asyncio.gather(*coroutines, return_exceptions=True)
