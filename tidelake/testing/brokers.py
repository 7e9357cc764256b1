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
import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.admin import describe_cluster
from core.settings import KAFKA_VERSION, BrokerSettings
from tidelake.broker import LocalBroker, free_port
from tidelake.kafka_jars import ensure_jars

DOCKER_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
#: The environment variable naming a broker to use instead of starting one.
BOOTSTRAP_ENV = "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS"
#: ... and the one naming a folder of Kafka's jars (default: fetched by Maven into the user cache).
JARS_ENV = "TIDELAKE_BROKER__JARS_DIR"


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
def local_kafka(
    data_dir: Path, port: int | None = None, controller_port: int | None = None, *, fast_start: bool = False
) -> Iterator[str]:
    """tidelake's local broker (Kafka's jars) on `port` (default: a free one) until the block ends.
    `fast_start` starts its JVM with `FAST_START_JVM_OPTIONS` and a class-data archive (see there)."""
    port = port or free_port()
    jars = os.environ.get(JARS_ENV)
    settings = BrokerSettings(
        port=port,
        controller_port=controller_port or free_port(),
        data_dir=data_dir,
        jars_dir=Path(jars) if jars else None,
    )
    broker = LocalBroker(settings)
    archive = None
    if fast_start:
        ensure_jars(settings)  # before JAVA_TOOL_OPTIONS: Maven's JVM must not get the broker's options
        archive = _class_archive(settings)
    with _java_tool_options(_jvm_options(archive, data_dir) if fast_start else []):
        state = broker.start()
    try:
        yield state.bootstrap_servers
    finally:
        broker.stop()
        if archive is not None:
            _keep_archive(archive, data_dir)


#: JVM options of a test stack's local broker. A test broker lives for one session and carries
#: little data, so start-up matters more than peak speed: C1 only (no C2 compile threads fighting
#: for 2 cores), and Kafka's classes from a class-data-sharing archive dumped by the first session
#: (JDK 13+ `-XX:ArchiveClassesAtExit`, read with `-XX:SharedArchiveFile`; an archive from another
#: JDK or jar set is ignored with a warning). Measured on the 2-core machine at load 6-8: 6-12 s to
#: ready against 31-41 s with the broker's defaults (docs/benchmarks.md, "stack").
FAST_START_JVM_OPTIONS = ["-XX:TieredStopAtLevel=1"]
_environ_lock = threading.Lock()


def _class_archive(settings: BrokerSettings) -> Path:
    """Where the class-data archive of this JDK and Kafka version lives (beside the jars)."""
    from tidelake.kafka_jars import jars_dir

    java = shutil.which("java") or "java"
    jdk = hashlib.sha256(os.path.realpath(java).encode()).hexdigest()[:12]
    return jars_dir(settings).parent / f"kafka-{settings.kafka_version}-{jdk}.jsa"


def _jvm_options(archive: Path | None, data_dir: Path) -> list[str]:
    if archive is None:
        return list(FAST_START_JVM_OPTIONS)
    if archive.is_file():
        return [*FAST_START_JVM_OPTIONS, f"-XX:SharedArchiveFile={archive}"]
    return [*FAST_START_JVM_OPTIONS, f"-XX:ArchiveClassesAtExit={data_dir / archive.name}"]


def _keep_archive(archive: Path, data_dir: Path) -> None:
    """Move an archive the broker dumped at exit beside the jars, for the next sessions."""
    dumped = data_dir / archive.name
    if dumped.is_file() and not archive.is_file():
        with contextlib.suppress(OSError):
            shutil.move(str(dumped), str(archive))


@contextmanager
def _java_tool_options(options: list[str]) -> Iterator[None]:
    """JAVA_TOOL_OPTIONS (read by every JVM at start) with `options` added while the block runs:
    `LocalBroker` starts its JVMs with this process's environment."""
    if not options:
        yield
        return
    with _environ_lock:
        before = os.environ.get("JAVA_TOOL_OPTIONS")
        os.environ["JAVA_TOOL_OPTIONS"] = " ".join([*([before] if before else []), *options])
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("JAVA_TOOL_OPTIONS", None)
            else:
                os.environ["JAVA_TOOL_OPTIONS"] = before


@contextmanager
def _external(address: str) -> Iterator[str]:
    describe_cluster(address, timeout_ms=15_000)  # BrokerUnavailable if it does not answer
    yield address


def choose_kafka(scratch: Path, *, fast_start: bool = False) -> KafkaChoice:
    """Choose the broker (see the module docstring) and its ports; start nothing yet. `fast_start`:
    a local broker's JVM starts with `FAST_START_JVM_OPTIONS` (the test stack's choice)."""
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
        lambda: local_kafka(scratch / "kafka", port, controller_port, fast_start=fast_start),
    )


@contextmanager
def session_kafka(scratch: Path) -> Iterator[tuple[str, str]]:
    """Yield (bootstrap address, which broker) for the whole test session."""
    choice = choose_kafka(scratch)
    with contextlib.ExitStack() as stack:
        stack.enter_context(choice.running())
        yield choice.address, choice.label
