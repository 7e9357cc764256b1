"""Which real Kafka a test session talks to, in this order:

1. the address in TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, if set (it must answer);
2. `apache/kafka` of tidelake's pinned version in a container, if a Docker engine answers
   (testcontainers);
3. tidelake's own local broker (Kafka's jars through Maven) on a free port and a temporary data dir.

    choice = choose_kafka(scratch)          # the address is known before anything starts
    with choice.running():                   # returns once the broker answers; stops it at the end
        ...choice.address, choice.label...

Knowing the address first lets `tidelake.testing.stack` start `tidelake serve` while the broker
boots. Whatever is chosen must work: a broker that cannot be reached or started raises
(BrokerUnavailable, BrokerStartError, or Docker's error). Nothing here is ever replaced by a mock.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.admin import describe_cluster
from core.settings import KAFKA_VERSION, BrokerSettings
from tidelake.broker import LocalBroker, free_port

DOCKER_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
#: The environment variable naming a broker to use instead of starting one.
BOOTSTRAP_ENV = "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class KafkaChoice:
    """A broker chosen but not started: `address` (host:port) is where it will answer, `label` says
    which it is (for a report header), `running()` starts it and stops it at the block's end."""

    address: str
    label: str
    running: Callable[[], AbstractContextManager[object]]
    #: True when the session starts (and stops) this broker; False for one given by the environment.
    owned: bool = True


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


def kafka_container_envs(port: int, controller_port: int) -> dict[str, str]:
    """The environment of a one-node `apache/kafka` container listening on `port` (advertised as
    127.0.0.1:`port`, so the host port must equal the container port)."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:{controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{controller_port}",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS": "1000",
        "KAFKA_MESSAGE_MAX_BYTES": str(2 * 1024 * 1024),
    }


@contextmanager
def docker_kafka(port: int, controller_port: int) -> Iterator[str]:
    """`apache/kafka` in Docker on `port` until the block ends; yields its address once it answers."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (
        DockerContainer(DOCKER_IMAGE)
        .with_bind_ports(port, port)  # host port = container port, so the advertised address is right
        .with_envs(**kafka_container_envs(port, controller_port))
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
def local_kafka(data_dir: Path, port: int | None = None, controller_port: int | None = None) -> Iterator[str]:
    """tidelake's local broker (Kafka's jars) on `port` (default: a free one) until the block ends."""
    port = port or free_port()
    broker = LocalBroker(
        BrokerSettings(port=port, controller_port=controller_port or free_port(), data_dir=data_dir)
    )
    state = broker.start()
    try:
        yield state.bootstrap_servers
    finally:
        broker.stop()


@contextmanager
def _external(address: str) -> Iterator[str]:
    describe_cluster(address, timeout_ms=15_000)  # BrokerUnavailable if it does not answer
    yield address


def choose_kafka(scratch: Path) -> KafkaChoice:
    """Choose the broker (see the module docstring) and its ports; start nothing yet."""
    address = os.environ.get(BOOTSTRAP_ENV)
    if address:
        return KafkaChoice(address, f"external broker at {address}", lambda: _external(address), owned=False)
    port, controller_port = free_port(), free_port()
    if docker_engine_answers():
        return KafkaChoice(
            f"127.0.0.1:{port}",
            f"{DOCKER_IMAGE} in Docker at 127.0.0.1:{port}",
            lambda: docker_kafka(port, controller_port),
        )
    return KafkaChoice(
        f"127.0.0.1:{port}",
        f"local Kafka {KAFKA_VERSION} (Maven jars) at 127.0.0.1:{port}",
        lambda: local_kafka(scratch / "kafka", port, controller_port),
    )


@contextmanager
def session_kafka(scratch: Path) -> Iterator[tuple[str, str]]:
    """Yield (bootstrap address, which broker) for the whole test session."""
    choice = choose_kafka(scratch)
    with contextlib.ExitStack() as stack:
        stack.enter_context(choice.running())
        yield choice.address, choice.label
