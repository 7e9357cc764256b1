"""The Kafka that every role relies on: real round trips, partitions, restarts."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.admin import create_topics, describe_topics
from core.errors import BrokerStartError
from core.settings import BrokerSettings
from core.topics import TopicSpec
from tidelake.broker import LocalBroker, free_port

CLI = [sys.executable, "-m", "tidelake.cli"]


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list = []
    try:
        for _ in range(int(timeout_s * 10)):
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def test_kafka_python_round_trip_keeps_per_key_order(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=4)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(200):
        producer.send(topic, key=f"visitor-{i % 7}".encode(), value=json.dumps({"n": i}).encode())
    producer.flush()
    producer.close()

    records = consume_all(kafka_bootstrap, topic, 200)
    assert len(records) == 200
    by_key: dict[bytes, list[int]] = {}
    partition_of_key: dict[bytes, set[int]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(json.loads(record.value)["n"])
        partition_of_key.setdefault(record.key, set()).add(record.partition)
    assert sorted(n for ns in by_key.values() for n in ns) == list(range(200))
    for key, numbers in by_key.items():
        assert numbers == sorted(numbers), key
        assert len(partition_of_key[key]) == 1, key
    assert len({r.partition for r in records}) > 1  # 7 keys spread over 4 partitions


def test_aiokafka_round_trip(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=1)

    async def go() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            got: list[bytes] = []
            async with asyncio.timeout(30):
                while len(got) < 10:
                    batches = await consumer.getmany(timeout_ms=200)
                    got.extend(m.value for ms in batches.values() for m in ms)
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(go()) == [f"m{i}".encode() for i in range(10)]


def test_topic_with_four_partitions_and_end_offsets(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=4)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for partition in range(4):
        for _ in range(partition + 1):
            producer.send(topic, b"x", partition=partition)
    producer.flush()
    producer.close()
    (info,) = describe_topics(kafka_bootstrap, [topic])
    assert info.partitions == 4
    assert info.end_offsets == (1, 2, 3, 4)
    assert info.records == 10


def test_creating_an_existing_topic_changes_nothing(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic(partitions=2)
    assert create_topics(kafka_bootstrap, [TopicSpec(topic, 4)]) == []
    (info,) = describe_topics(kafka_bootstrap, [topic])
    assert info.partitions == 2


@pytest.fixture
def own_broker(tmp_path: Path):
    """A broker of this test's own, so that it can be stopped and started."""
    broker = LocalBroker(
        BrokerSettings(port=free_port(), controller_port=free_port(), data_dir=tmp_path / "kafka")
    )
    yield broker
    broker.stop()


def test_data_survives_stop_and_start_on_the_same_data_dir(own_broker: LocalBroker) -> None:
    state = own_broker.start()
    create_topics(state.bootstrap_servers, [TopicSpec("survivors", 2)])
    producer = KafkaProducer(bootstrap_servers=state.bootstrap_servers, acks="all")
    for i in range(50):
        producer.send("survivors", key=str(i).encode(), value=f"v{i}".encode())
    producer.flush()
    producer.close()

    assert own_broker.stop() is not None
    assert own_broker.running_state() is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", state.port), timeout=1).close()

    restarted = own_broker.start()
    assert restarted.pid != state.pid
    records = consume_all(restarted.bootstrap_servers, "survivors", 50)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(50))
    (info,) = describe_topics(restarted.bootstrap_servers, ["survivors"])
    assert info.partitions == 2
    assert info.records == 50


def test_start_is_idempotent_and_status_reports_the_broker(own_broker: LocalBroker) -> None:
    first = own_broker.start()
    again = own_broker.start()
    assert again.pid == first.pid
    report = own_broker.status().to_dict()
    assert report["running"] is True
    assert report["pid"] == first.pid
    assert report["port"] == first.port
    assert report["kafka_version"] == own_broker.settings.kafka_version
    assert report["topics"] == []


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = LocalBroker(BrokerSettings(port=port, controller_port=free_port(), data_dir=tmp_path))
        with pytest.raises(BrokerStartError, match=rf"port {port} on 127.0.0.1 is already in use"):
            broker.start()
    assert broker.running_state() is None


def test_broker_that_dies_while_starting_shows_its_log(tmp_path: Path) -> None:
    broker = LocalBroker(
        BrokerSettings(port=free_port(), controller_port=free_port(), data_dir=tmp_path, heap="1m")
    )
    with pytest.raises(BrokerStartError) as caught:
        broker.start()
    message = str(caught.value)
    assert "exited with code 1 while starting" in message
    assert "heap" in message.lower()  # the JVM's own words from the log tail
    assert broker.running_state() is None


def test_cli_start_status_stop(tmp_path: Path) -> None:
    port = free_port()
    env_args = ["--port", str(port), "--data-dir", str(tmp_path / "kafka")]
    try:
        started = subprocess.run(
            [*CLI, "broker", "start", *env_args, "--json"], capture_output=True, text=True, check=False
        )
        assert started.returncode == 0, started.stderr
        info = json.loads(started.stdout)
        assert info["running"] is True
        assert info["bootstrap_servers"] == f"127.0.0.1:{port}"

        created = subprocess.run(
            [*CLI, "topics", "create", "clicks", "--partitions", "4", "-b", f"127.0.0.1:{port}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert "Created topic clicks with 4 partitions" in created.stdout

        status = subprocess.run(
            [*CLI, "broker", "status", *env_args, "--json"], capture_output=True, text=True, check=False
        )
        assert status.returncode == 0
        assert json.loads(status.stdout)["topics"] == [{"name": "clicks", "partitions": 4, "records": 0}]
    finally:
        stopped = subprocess.run(
            [*CLI, "broker", "stop", *env_args], capture_output=True, text=True, check=False
        )
    assert stopped.returncode == 0
    assert f"Stopped Kafka (pid {info['pid']})" in stopped.stdout
    after = subprocess.run([*CLI, "broker", "status", *env_args], capture_output=True, text=True, check=False)
    assert after.returncode == 1
    assert "No tidelake broker is running" in after.stdout


def test_cli_reports_an_unreachable_broker_in_one_line() -> None:
    port = free_port()
    done = subprocess.run(
        [*CLI, "topics", "list", "-b", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: no Kafka broker answers at 127.0.0.1:{port} (KafkaTimeoutError); start one with "
        "`tidelake broker start` or set TIDELAKE_KAFKA__BOOTSTRAP_SERVERS"
    ]
