"""A real single-node Apache Kafka (KRaft, broker + controller) on 127.0.0.1, run from its jars.

This is tidelake's stand-in for the Kinesis Data Streams service. Lifecycle:

    start  fetch jars (once) -> write server.properties -> format storage (first use only)
           -> spawn `java kafka.Kafka` -> ready when DescribeCluster lists the broker
    stop   SIGTERM to the PID we started (Kafka shuts down cleanly), SIGKILL after a timeout
    run    start, then stay in the foreground until Ctrl-C or SIGTERM

State lives in `<data_dir>/broker.json` (pid, ports, start time); the log in `<data_dir>/broker.log`.
We never signal a process unless its command line shows it is our broker on this data dir.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from core.admin import describe_cluster, describe_topics
from core.errors import BrokerStartError, BrokerUnavailable, TidelakeError
from core.settings import BrokerSettings
from tidelake.kafka_jars import check_java, ensure_jars

LOG_TAIL_LINES = 25
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2

JVM_OPTIONS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


def new_cluster_id() -> str:
    """A cluster id in Kafka's own form: 16 random bytes, URL-safe base64 without padding, no '-'."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if "-" not in candidate:
            return candidate


def server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    """server.properties for one combined broker + controller; every internal topic at replication 1."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        # Defaults of 3 (and min ISR 2) would leave a single node without a group coordinator.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumer groups form at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "num.recovery.threads.per.data.dir": "1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        # Room for Kinesis-sized records (1 MiB of data plus key and headers).
        "message.max.bytes": str(2 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


@dataclass
class BrokerState:
    """What `broker.json` remembers about a running broker."""

    pid: int
    port: int
    controller_port: int
    kafka_version: str
    data_dir: str
    started_at: float
    ready_after_s: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class BrokerStatus:
    """The answer of `tidelake broker status`."""

    running: bool
    state: BrokerState | None
    topics: list[dict] | None = None

    def to_dict(self) -> dict:
        out: dict = {"running": self.running}
        if self.state is not None:
            out |= asdict(self.state) | {
                "bootstrap_servers": self.state.bootstrap_servers,
                "uptime_s": round(time.time() - self.state.started_at, 1) if self.running else None,
            }
        if self.topics is not None:
            out["topics"] = self.topics
        return out


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts_tcp(port: int) -> bool:
    """Whether something on 127.0.0.1 accepts a TCP connection on `port` (within 0.5 s)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class LocalBroker:
    """One local Kafka broker bound to a data dir. Safe to construct: nothing happens until a call."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.log_dir = self.data_dir / "kraft"
        self.state_file = self.data_dir / "broker.json"
        self.log_file = self.data_dir / "broker.log"
        self.properties_file = self.data_dir / "server.properties"
        self.log4j_file = self.data_dir / "log4j2.yaml"
        # The JVM we spawned, when it is our child; kept so it is reaped, not left to the GC.
        self._process: subprocess.Popen | None = None

    # ----------------------------------------------------------------- state
    def read_state(self) -> BrokerState | None:
        try:
            return BrokerState(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def _is_our_process(self, pid: int) -> bool:
        """True when `pid` is alive and its command line is our broker on this data dir."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            try:
                os.kill(pid, 0)  # no /proc (macOS): alive is the best we can tell
            except OSError:
                return False
            return True
        return b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline

    def running_state(self) -> BrokerState | None:
        """The state of the broker if it is running now, else None (a stale state file is removed)."""
        state = self.read_state()
        if state is None:
            return None
        if self._is_our_process(state.pid):
            return state
        self.state_file.unlink(missing_ok=True)
        return None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no broker log yet)"

    # ----------------------------------------------------------------- start
    def start(self) -> BrokerState:
        """Start the broker in the background and return once clients can use it.

        Idempotent: a broker already running on this data dir is returned as it is.
        """
        running = self.running_state()
        if running is not None:
            return running
        port = self.settings.port
        controller_port = self.settings.resolved_controller_port()
        for label, number in (("port", port), ("controller port", controller_port)):
            if not port_is_free(number):
                msg = f"{label} {number} on 127.0.0.1 is already in use; stop what holds it or choose another with --port / TIDELAKE_BROKER__PORT"
                raise BrokerStartError(msg)
        check_java()
        jars = ensure_jars(self.settings)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(server_properties(port, controller_port, self.log_dir))
        self.log4j_file.write_text(resources.files("tidelake.resources").joinpath("log4j2.yaml").read_text())
        classpath = f"{jars}/*"
        if not (self.log_dir / "meta.properties").is_file():
            self._format(classpath)

        started_at = time.time()
        command = [
            "java", "-Xms256m", f"-Xmx{self.settings.heap}", *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.log4j_file}", f"-Dkafka.logs.dir={self.data_dir}",
            "-cp", classpath, "kafka.Kafka", str(self.properties_file),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            log.write(
                f"\n==== tidelake: starting Kafka {self.settings.kafka_version} at {time.ctime()} ====\n".encode()
            )
            log.flush()
            # A session of its own: Ctrl-C in the terminal that started it does not reach the JVM.
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._process = process
        state = BrokerState(
            pid=process.pid,
            port=port,
            controller_port=controller_port,
            kafka_version=self.settings.kafka_version,
            data_dir=str(self.data_dir),
            started_at=started_at,
        )
        self.state_file.write_text(json.dumps(asdict(state)))
        try:
            self._wait_ready(process, state)
        except BaseException:
            self._terminate(process.pid)
            self.state_file.unlink(missing_ok=True)
            raise
        state.ready_after_s = round(time.time() - started_at, 2)
        self.state_file.write_text(json.dumps(asdict(state)))
        return state

    def _format(self, classpath: str) -> None:
        command = [
            "java", "-Xmx256m", "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp", classpath, "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(self.properties_file), "--ignore-formatted",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-LOG_TAIL_LINES:])
            msg = f"formatting Kafka storage in {self.log_dir} failed (exit {done.returncode}):\n{tail}"
            raise BrokerStartError(msg)

    def _wait_ready(self, process: subprocess.Popen, state: BrokerState) -> None:
        """Ready = the data port accepts TCP (it opens only once the broker is unfenced) and
        DescribeCluster lists the broker."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                msg = f"the Kafka broker exited with code {code} while starting; last lines of {self.log_file}:\n{self.log_tail()}"
                raise BrokerStartError(msg)
            if accepts_tcp(state.port):
                try:
                    cluster = describe_cluster(state.bootstrap_servers, timeout_ms=3_000)
                except BrokerUnavailable:
                    cluster = {}
                if cluster.get("brokers"):
                    return
            time.sleep(POLL_INTERVAL_S)
        msg = f"the Kafka broker did not become ready within {self.settings.start_timeout_s:.0f} s (TIDELAKE_BROKER__START_TIMEOUT_S); last lines of {self.log_file}:\n{self.log_tail()}"
        raise BrokerStartError(msg)

    # ------------------------------------------------------------------ stop
    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> BrokerState | None:
        """Stop the broker started on this data dir; return its state, or None if none was running."""
        state = self.running_state()
        if state is None:
            return None
        self._terminate(state.pid, timeout_s)
        self.state_file.unlink(missing_ok=True)
        return state

    def kill(self) -> BrokerState | None:
        """SIGKILL the broker, as a crash would (no clean shutdown; for outage drills); None if none ran."""
        state = self.running_state()
        if state is None:
            return None
        os.kill(state.pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._alive(state.pid):
            if time.monotonic() > deadline:
                msg = f"the Kafka broker (pid {state.pid}) did not exit after SIGKILL"
                raise TidelakeError(msg)
            time.sleep(POLL_INTERVAL_S)
        self.state_file.unlink(missing_ok=True)
        return state

    def _terminate(self, pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Kafka's clean shutdown), then SIGKILL if it is still alive after `timeout_s`."""
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not self._alive(pid):
                    return
                time.sleep(POLL_INTERVAL_S)
        msg = f"the Kafka broker (pid {pid}) did not exit after SIGKILL"
        raise TidelakeError(msg)

    def _alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if waited == pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie that is not our child still answers kill(0)
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except (OSError, IndexError):
            return True

    # ---------------------------------------------------------------- status
    def status(self, with_topics: bool = True) -> BrokerStatus:
        state = self.running_state()
        if state is None:
            return BrokerStatus(running=False, state=self.read_state())
        topics = None
        if with_topics:
            try:
                topics = [
                    {"name": t.name, "partitions": t.partitions, "records": t.records}
                    for t in describe_topics(state.bootstrap_servers, timeout_ms=5_000)
                ]
            except BrokerUnavailable:
                topics = None
        return BrokerStatus(running=True, state=state, topics=topics)

    # ------------------------------------------------------------------- run
    def run(self) -> int:
        """Start and stay in the foreground; Ctrl-C or SIGTERM stops the broker cleanly."""
        state = self.start()
        stop_requested = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stop_requested
            stop_requested = True

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop_requested and self._alive(state.pid):
                time.sleep(POLL_INTERVAL_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._alive(state.pid):  # asked to stop, or leaving on an error: never orphan the JVM
                self.stop()
        if stop_requested:
            return 0
        self.state_file.unlink(missing_ok=True)
        msg = f"the Kafka broker (pid {state.pid}) exited on its own; last lines of {self.log_file}:\n{self.log_tail()}"
        raise BrokerStartError(msg)
