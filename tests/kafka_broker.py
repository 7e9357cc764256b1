"""Which real Kafka the test session talks to, in this order:

1. the address in TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, if set (it must answer);
2. `apache/kafka` in a container, if a Docker engine answers;
3. tidelake's own local broker (Kafka's jars through Maven) on a free port and a temporary data dir.

Whatever is chosen must work: a broker that cannot be reached or started fails the suite loudly.
Nothing here is ever replaced by a mock.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.admin import describe_cluster
from core.settings import KAFKA_VERSION, BrokerSettings
from tidelake.broker import LocalBroker, free_port

DOCKER_IMAGE = f"apache/kafka:{KAFKA_VERSION}"


def docker_engine_answers() -> bool:
    """True when a Docker engine answers /_ping (asked over its socket, without the docker library,
    which leaks a socket when the engine is missing)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            probe, address = socket.socket(socket.AF_INET, socket.SOCK_STREAM), (name, int(port or 2375))
        else:
            return False
        with probe:
            probe.settimeout(3)
            probe.connect(address)
            probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in probe.recv(64)
    except (OSError, ValueError):
        return False


@contextmanager
def docker_kafka() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port, controller_port = free_port(), free_port()
    container = (
        DockerContainer(DOCKER_IMAGE)
        .with_bind_ports(port, port)  # host port = container port, so the advertised address is right
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS=f"PLAINTEXT://:{port},CONTROLLER://:{controller_port}",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS=f"1@localhost:{controller_port}",
            KAFKA_INTER_BROKER_LISTENER_NAME="PLAINTEXT",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS="1000",
            KAFKA_MESSAGE_MAX_BYTES=str(2 * 1024 * 1024),
        )
    )
    container.start()
    try:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        address = f"127.0.0.1:{port}"
        describe_cluster(address, timeout_ms=30_000)
        yield address
    finally:
        container.stop()


@contextmanager
def local_kafka(data_dir: Path) -> Iterator[str]:
    port = free_port()
    broker = LocalBroker(BrokerSettings(port=port, controller_port=free_port(), data_dir=data_dir))
    state = broker.start()
    try:
        yield state.bootstrap_servers
    finally:
        broker.stop()


@contextmanager
def session_kafka(scratch: Path) -> Iterator[tuple[str, str]]:
    """Yield (bootstrap address, which broker) for the whole test session."""
    address = os.environ.get("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS")
    if address:
        describe_cluster(address, timeout_ms=15_000)  # BrokerUnavailable if it does not answer
        yield address, f"external broker at {address}"
    elif docker_engine_answers():
        with docker_kafka() as address:
            yield address, f"{DOCKER_IMAGE} in Docker at {address}"
    else:
        with local_kafka(scratch / "kafka") as address:
            yield address, f"local Kafka {KAFKA_VERSION} (Maven jars) at {address}"
