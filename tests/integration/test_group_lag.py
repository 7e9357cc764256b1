"""Consumer-group lag in records and in milliseconds behind latest (Kinesis's iterator age)."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from core.admin import PartitionLag, consumer_group_lag, delete_consumer_groups
from core.errors import ConfigError

BASE_MS = 1_700_000_000_000


def test_lag_and_millis_behind_latest_per_partition(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(10):  # partition i % 2, one second apart
        producer.send(topic, b"x", partition=i % 2, timestamp_ms=BASE_MS + i * 1000)
    producer.flush()
    producer.close()

    group = f"test-lag-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    consumer.commit(
        {
            TopicPartition(topic, 0): OffsetAndMetadata(1, "", -1),
            TopicPartition(topic, 1): OffsetAndMetadata(5, "", -1),
        }
    )
    consumer.close()

    (lag,) = [g for g in consumer_group_lag(kafka_bootstrap) if g.group == group]
    by_partition = {p.partition: p for p in lag.partitions}
    # partition 0 holds records 0,2,4,6,8: next unread is record 2 (t=2 s), latest record 8 (t=8 s)
    assert (by_partition[0].committed, by_partition[0].end_offset, by_partition[0].lag) == (1, 5, 4)
    assert by_partition[0].millis_behind_latest == 6000
    # partition 1 is fully read: no lag, nothing behind
    assert (by_partition[1].committed, by_partition[1].lag, by_partition[1].millis_behind_latest) == (5, 0, 0)
    assert lag.lag == 4
    assert lag.millis_behind_latest == 6000
    assert lag.caught_up is False


def test_offsets_past_a_recreated_topics_end_count_as_caught_up_and_groups_can_be_deleted(
    kafka_bootstrap: str, make_topic
) -> None:
    """`tidelake demo --fresh` deletes its topics and groups: groups left with offsets past the new
    end once kept the demo waiting for a lag of -39 that never became 0."""
    topic = make_topic(partitions=1)
    group = f"test-stale-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(29, "", -1)})  # the topic is empty
    consumer.close()
    (stale,) = [g for g in consumer_group_lag(kafka_bootstrap) if g.group == group]
    assert (stale.lag, stale.caught_up) == (-29, True)

    delete_consumer_groups(kafka_bootstrap, [group, f"{group}-never-existed"])
    assert [g for g in consumer_group_lag(kafka_bootstrap) if g.group == group] == []


def test_a_group_with_a_running_member_is_not_deleted(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=1)
    group = f"test-busy-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group)
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200)
    try:
        with pytest.raises(ConfigError, match=f"consumer groups {group} still have running members"):
            delete_consumer_groups(kafka_bootstrap, [group])
    finally:
        consumer.close()


def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    consumer.close()


def _partition(bootstrap: str, group: str) -> PartitionLag:
    (lag,) = [g for g in consumer_group_lag(bootstrap) if g.group == group]
    (partition,) = lag.partitions
    return partition


def test_a_group_behind_by_transaction_markers_or_aborted_records_alone_has_caught_up(
    kafka_bootstrap: str, make_topic
) -> None:
    """The stream apps write in transactions: each commit marker takes an offset no consumer gets, so
    a group that read every record stays one offset behind per partition. Caught up means no record
    left for a read_committed consumer, not no offset left."""
    topic = make_topic(partitions=1)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"test-tx-{uuid.uuid4().hex[:8]}"
    )
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(3):  # offsets 0-2, the commit marker at 3
        producer.send(topic, b"x", partition=0, timestamp_ms=BASE_MS + i * 1000)
    producer.commit_transaction()
    group = f"test-tx-{uuid.uuid4().hex[:8]}"

    _commit(kafka_bootstrap, group, topic, 3)  # read every record: only the marker is left
    read_all = _partition(kafka_bootstrap, group)
    assert (read_all.lag, read_all.records_left, read_all.caught_up, read_all.millis_behind_latest) == (
        1,
        False,
        True,
        0,
    )

    _commit(kafka_bootstrap, group, topic, 1)  # records 1 and 2 are left
    behind = _partition(kafka_bootstrap, group)
    # (its ms behind latest compares with the newest timestamp, the marker's: the wall clock)
    assert (behind.lag, behind.records_left, behind.caught_up) == (3, True, False)

    producer.begin_transaction()  # offsets 4-5 aborted, the abort marker at 6: nothing to read
    producer.send(topic, b"y", partition=0, timestamp_ms=BASE_MS + 5000)
    producer.send(topic, b"y", partition=0, timestamp_ms=BASE_MS + 6000)
    producer.flush()
    producer.abort_transaction()
    _commit(kafka_bootstrap, group, topic, 3)
    aborted = _partition(kafka_bootstrap, group)
    assert (aborted.lag, aborted.records_left, aborted.caught_up) == (4, False, True)

    producer.begin_transaction()  # an open transaction: its record at offset 7 is coming
    producer.send(topic, b"z", partition=0, timestamp_ms=BASE_MS + 7000)
    producer.flush()
    try:
        pending = _partition(kafka_bootstrap, group)
        assert (pending.lag, pending.records_left, pending.caught_up) == (5, True, False)
    finally:
        producer.abort_transaction()
        producer.close()
