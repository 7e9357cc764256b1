"""A producer rides out a broker restart that lasts longer than its request timeout: batches wait
for the broker, and for their partition's leader once it is back, up to the delivery timeout
(Kafka's delivery.timeout.ms), and every record arrives once."""

from __future__ import annotations

import asyncio

import pytest

from core.admin import create_topics
from core.settings import load_settings
from core.topics import TopicSpec
from producers.sender import BatchSender
from tests.integration.test_broker import consume_all
from tidelake.broker import LocalBroker

pytestmark = pytest.mark.integration

RECORDS = 300


async def _send_across_a_restart(broker: LocalBroker, topic: str) -> None:
    bootstrap = broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    settings = load_settings(
        kafka={"bootstrap_servers": bootstrap, "request_timeout_ms": 1_000},
        producer={"delivery_timeout_ms": 120_000, "linger_ms": 0},
    )
    async with BatchSender(settings, topic) as sender:
        await sender.send_many([(f"k{i}".encode(), f"before-{i}".encode()) for i in range(RECORDS)])
        await sender.flush()
        await asyncio.to_thread(broker.stop)
        # batches made while the broker is away: they must outlive the 1 s request timeout
        await sender.send_many([(f"k{i}".encode(), f"during-{i}".encode()) for i in range(RECORDS)])
        await sender.submit_open()
        await asyncio.sleep(3.0)
        await asyncio.to_thread(broker.start)
        await sender.flush()


def test_batches_wait_for_the_leader_through_a_broker_restart(own_broker: LocalBroker) -> None:
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    create_topics(bootstrap, [TopicSpec("restart-ridden", 2)])

    asyncio.run(_send_across_a_restart(own_broker, "restart-ridden"))

    values = sorted(r.value.decode() for r in consume_all(bootstrap, "restart-ridden", 2 * RECORDS, 60))
    expected = sorted([f"before-{i}" for i in range(RECORDS)] + [f"during-{i}" for i in range(RECORDS)])
    assert values == expected
