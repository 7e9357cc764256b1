"""A delivery stream's kafka-python consumer: its client settings, its subscription, and the rebalance
listener that hands partition changes to the stream.

Offsets are never committed automatically: the stream commits them itself, after the files of a
flush are durable (`sinks.stream`'s flush order).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from core.errors import BrokerUnavailable, ConfigError
from core.settings import KafkaSettings
from sinks.config import DeliveryStreamConfig
from sinks.ownership import DatasetClaims

#: How long closing the consumer may take (kafka-python's LeaveGroup). A member that stops while its
#: group is still joining waits, on the same connection, for the join the broker holds back until a
#: dead member's session expires (30 s): `--max-idle 2` then took 15-30 s more to exit. Leaving the
#: group is best effort either way (the group drops a member that did not leave when its session ends).
CLOSE_TIMEOUT_MS = 3_000
#: Client settings shared with the benchmark's read-and-discard baseline (same client, same fetches).
CONSUMER_TUNING = {
    "max_poll_records": 10_000,
    "max_partition_fetch_bytes": 8 << 20,
    "fetch_max_bytes": 64 << 20,
    "fetch_min_bytes": 1,
    "fetch_max_wait_ms": 100,
    # Records of aborted transactions never reach the lake, nor those of open ones: stream apps
    # write their final rows in transactions (exactly-once from stream app to lake).
    "isolation_level": "read_committed",
}

PartitionsChanged = Callable[[set[TopicPartition]], None]


class RebalanceListener(ConsumerRebalanceListener):
    """kafka-python 3 runs listeners on its IO thread while the main thread waits in `poll`, and
    refuses blocking consumer calls there: the revoke flush writes its files inline and sends its
    commit asynchronously. If that commit is lost, the next owner finds the manifest and rolls the
    flush forward, so the files stay exactly-once either way."""

    def __init__(self, on_revoked: PartitionsChanged, on_assigned: PartitionsChanged) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned(assigned)


def connect(
    config: DeliveryStreamConfig,
    kafka: KafkaSettings,
    claims: DatasetClaims,
    listener: ConsumerRebalanceListener,
) -> KafkaConsumer:
    """A consumer of `config`'s group, subscribed to its topics (or pattern) with `listener`.
    A pattern stream without a `dataset` claims the datasets of the topics that match now.
    BrokerUnavailable when no broker answers; ConfigError when another stream owns a dataset."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}-sink-{config.name}",
            group_id=config.consumer_group,
            group_instance_id=config.instance_id,
            session_timeout_ms=config.session_timeout_ms,
            enable_auto_commit=False,
            auto_offset_reset=config.auto_offset_reset,
            request_timeout_ms=kafka.request_timeout_ms,
            **CONSUMER_TUNING,
        )
    except KafkaError as exc:
        msg = (
            f"delivery stream {config.name}: no Kafka broker answers at {kafka.bootstrap_servers} "
            f"({exc.__class__.__name__}); start one with `tidelake broker start` or set TIDELAKE_KAFKA__BOOTSTRAP_SERVERS"
        )
        raise BrokerUnavailable(msg) from exc
    if config.topic_pattern:
        consumer.subscribe(pattern=config.topic_pattern, listener=listener)
    else:
        consumer.subscribe(topics=config.topics, listener=listener)
    # kafka-python (3.0) snapshots the subscribed topics' partitions only when metadata arrives
    # after `subscribe`. A first join before that assigns with an empty snapshot: either no
    # partitions, never revisited, or a second rebalance right away that can stall for good
    # (about 1 start in 3 right after the topic was made). One metadata round trip first.
    try:
        topics = consumer.topics()
    except KafkaError as exc:
        consumer.close(autocommit=False)
        msg = f"delivery stream {config.name}: cannot read the cluster's metadata ({exc.__class__.__name__}: {exc}); check the broker"
        raise BrokerUnavailable(msg) from exc
    if config.topic_pattern and not config.dataset:
        pattern = re.compile(config.topic_pattern)
        try:  # the datasets of the topics that match now; later ones are claimed before their flush
            for topic in sorted(t for t in topics if pattern.match(t)):
                claims.claim(config.dataset_of(topic))
        except ConfigError:
            consumer.close(autocommit=False)
            raise
    return consumer
