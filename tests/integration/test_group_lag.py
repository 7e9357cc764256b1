"""Consumer-group lag in records and in milliseconds behind latest (Kinesis's iterator age)."""

from __future__ import annotations

import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from core.admin import consumer_group_lag

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
