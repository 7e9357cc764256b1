"""The Kafka clients behind the Kinesis actions: one producer, one shard reader and an admin
client, shared by every request thread.

The actions run in serve's thread pool and block on Kafka. Records go in and out through aiokafka,
whose record batches are built and read by compiled code (its `_crecords` extension): PutRecords
builds one batch per shard (`create_batch`/`send_batch`) and GetRecords decodes a fetch about ten
times faster than kafka-python's pure-Python reader, which had most of serve's CPU
(`producers.kinesis_reads`: Kafka's Fetch request itself, no consumer). aiokafka is
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
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError as AioKafkaError
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from producers.kinesis_errors import internal, unavailable
from producers.kinesis_reads import ShardReader
from producers.kinesis_requests import MAX_REQUEST_BYTES

_T = TypeVar("_T")

#: A batch of PutRecords for one shard holds at most this much before the next batch starts (a
#: larger record has a batch of its own); a call's 500 records of ~200 bytes fit one per shard.
BATCH_BYTES = 256 * 1024


class _AllTopicsClient(AIOKafkaClient):
    """aiokafka's client, whose metadata requests name no topic (all topics are described): a
    request that names a missing topic makes it where the broker auto-creates topics."""

    async def _metadata_update(self, cluster_metadata: Any, topics: Any) -> bool:
        return await super()._metadata_update(cluster_metadata, None)


class KafkaClients:
    """The clients of one KinesisService; thread-safe. `close()` sends what the producer holds and
    closes every client. The aiokafka clients are made on first use, so a service made without a
    broker (or never asked to put or read) starts no thread and opens no connection."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, timeout_s: float, max_readers: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._reader: ShardReader | None = None
        self._reader_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_readers)
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
        # the producer makes its own client; this class is that client's with one method changed
        producer.client.__class__ = _AllTopicsClient
        try:
            await asyncio.wait_for(producer.start(), self.timeout_s)
        except (AioKafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            raise unavailable(self.bootstrap_servers, exc) from exc
        return producer

    async def _start_reader(self) -> ShardReader:
        client = _AllTopicsClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(client.bootstrap(), self.timeout_s)
        except (AioKafkaError, OSError, TimeoutError) as exc:
            await client.close()
            raise unavailable(self.bootstrap_servers, exc) from exc
        return ShardReader(client)

    @contextlib.contextmanager
    def reader(self) -> Iterator[ShardReader]:
        """The shard reader, for at most `max_readers` reads at once (its requests share the
        client's connections; the bound keeps answers being built from piling up)."""
        if not self._slots.acquire(timeout=self.timeout_s):
            raise internal("every reader is busy; try again")
        try:
            with self._reader_lock:
                if self._reader is None:
                    self._reader = self.run(self._start_reader())
                reader = self._reader
            yield reader
        finally:
            self._slots.release()

    def read_ahead(
        self, read: Callable[[ShardReader], Coroutine[Any, Any, _T]]
    ) -> concurrent.futures.Future[_T] | None:
        """Start `read(reader)` on the loop without waiting, if a reader slot is free now (a read
        ahead never holds up a call); its future, or None."""
        if self.closed or self._reader is None or not self._slots.acquire(blocking=False):
            return None
        try:
            future = asyncio.run_coroutine_threadsafe(read(self._reader), self._running_loop())
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

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
        if loop is not None:
            stops = []
            if self._reader is not None:
                stops.append(self._reader.client.close())
                self._reader = None
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
