"""stop_clients: every client is stopped even when one fails to stop, a CancelledError that
belongs to a client's own tasks (aio-libs/aiokafka#647) is not taken for a cancellation of the
caller, and a real cancellation still propagates."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from stream_apps.worker import stop_clients


class _Client:
    """What stop_clients needs of an aiokafka client: stop(), which may raise."""

    def __init__(self, raises: BaseException | None = None, blocks: bool = False) -> None:
        self.raises = raises
        self.blocks = blocks
        self.stopped = False

    async def stop(self) -> None:
        if self.blocks:
            await asyncio.Event().wait()
        self.stopped = True
        if self.raises is not None:
            raise self.raises


def test_a_clients_own_cancelled_error_is_ignored_and_the_next_client_still_stops() -> None:
    consumer, producer = _Client(raises=asyncio.CancelledError()), _Client()
    asyncio.run(stop_clients(consumer, producer, owner="stream app t"))
    assert (consumer.stopped, producer.stopped) == (True, True)


def test_a_kafka_error_while_stopping_is_ignored_and_the_next_client_still_stops() -> None:
    consumer, producer = _Client(raises=KafkaConnectionError("gone")), _Client()
    asyncio.run(stop_clients(consumer, producer, owner="stream app t"))
    assert (consumer.stopped, producer.stopped) == (True, True)


def test_a_cancellation_of_the_caller_propagates() -> None:
    async def main() -> bool:
        blocked, after = _Client(blocks=True), _Client()
        task = asyncio.create_task(stop_clients(blocked, after, owner="stream app t"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return after.stopped

    assert asyncio.run(main()) is False


def test_any_other_error_is_not_swallowed() -> None:
    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(stop_clients(_Client(raises=ValueError("a bug")), owner="stream app t"))
