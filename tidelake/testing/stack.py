"""A whole tidelake stack for a test session: a real Kafka broker and `tidelake serve` (Kinesis,
Firehose, S3, Glue and Athena on one port) over a temporary lake and state folder.

    with start_stack(tmp_folder) as stack:
        kinesis = stack.client("kinesis")            # boto3, pointed at stack.endpoint_url
        stack.flush("orders")                        # Firehose's buffer, durable now
        stack.wait_delivered("orders", 1_000, timeout_s=30)
        stack.reset()                                # empty for the next test

Start-up is concurrent: the broker's ports are chosen first (`tidelake.testing.brokers`), so serve
starts with the broker's address while the broker boots (serve reaches Kafka on first use). The
stack is ready when serve listens and the broker answers. `close()` stops the stream apps it ran,
serve (SIGTERM, as Ctrl-C, so every delivery stream flushes), then the broker it started.

Every wait here is bounded and raises `StackError` with what it saw when time runs out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidelake.testing.brokers import choose_kafka

if TYPE_CHECKING:
    from tidelake.testing.apps import StreamApp

REGION = "us-east-1"
#: The access key id the clients send: serve on loopback needs no token, any key is accepted.
ACCESS_KEY_ID = "test"
SECRET_ACCESS_KEY = "test"
#: How long serve may take to listen, and the broker to answer, before the stack gives up.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


class StackError(AssertionError):
    """A stack that did not start, or a wait that ran out of time: the message says what was seen.
    An AssertionError, so pytest shows it as a test failure, not an error in the test's code."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TidelakeStack:
    """A running stack: where to reach it, and the test helpers (see the module docstring)."""

    endpoint_url: str
    bootstrap_servers: str
    lake: Path
    state_dir: Path
    region: str = REGION
    #: Which broker this is ("local Kafka 4.1.0 (Maven jars) at 127.0.0.1:40123", ...).
    broker_label: str = ""
    #: serve's output, for a failure message.
    serve_log: Path | None = None
    #: PIDs of the processes this stack started (serve, the local broker's JVM, stream apps).
    pids: list[int] = field(default_factory=list)
    #: Kafka topics that were there before the stack (an external broker): reset keeps them.
    foreign_topics: list[str] = field(default_factory=list)
    #: Seconds from `start_stack` to ready, to serve listening, and to the broker answering.
    start_s: float = 0.0
    serve_ready_s: float = 0.0
    broker_ready_s: float = 0.0
    apps: list[StreamApp] = field(default_factory=list)

    # -- clients ---------------------------------------------------------------------------------
    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for `service` ("kinesis", "firehose", "athena", "s3", "glue") pointed at
        the stack, with test credentials and one attempt (a failure shows at once, not after retries)."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 1}, **({"s3": {"addressing_style": "path"}} if service == "s3" else {})
        )
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=kwargs.pop("config", config),
            **kwargs,
        )

    def env(self) -> dict[str, str]:
        """The variables that point code building its own clients (`boto3.client("kinesis")`, the
        AWS CLI, PyAthena, other SDKs) at the stack: AWS_ENDPOINT_URL (every service), region and
        credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers,
        }

    # -- serve's test routes ---------------------------------------------------------------------
    def post(self, route: str, body: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
        """`POST /_tidelake/<route>` with a JSON body; the JSON answer, or StackError with serve's
        error (`__type` and message) when it answers one."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/_tidelake/{route}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                return dict(json.loads(answer.read()))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                error = json.loads(text)
                text = f"{error.get('__type')}: {error.get('message')}"
            except ValueError:
                pass
            msg = f"POST /_tidelake/{route} answered {exc.code}: {text}"
            raise StackError(msg) from None

    def reset(self) -> dict[str, Any]:
        """Stop the stream apps this stack ran, then empty the stack (`POST /_tidelake/reset`):
        delivery streams, Kinesis streams (but topics that were on an external broker before the
        stack), the lake, Glue tables made by the test, Athena's saved state. Answers what went."""
        self.stop_apps()
        return self.post("reset", {"KeepStreams": self.foreign_topics})

    def flush(self, delivery_stream: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Flush Firehose stream `delivery_stream` now, as its buffering interval would, and return
        when every record put before the call is in durable files (`sinks.firehose_flush`).
        StackError naming each partition's committed and wanted offsets after `timeout_s` seconds."""
        return self.post(
            "flush", {"DeliveryStreamName": delivery_stream, "TimeoutSeconds": timeout_s}, timeout_s + 30
        )

    def wait_delivered(self, delivery_stream: str, n: int, timeout_s: float = 30.0) -> int:
        """Flush `delivery_stream` until at least `n` of its records are rows in the lake (its
        dataset's Parquet files); returns the rows found. StackError with the rows, files and error
        files seen after `timeout_s` seconds."""
        from tidelake.testing.waits import wait_delivered

        return wait_delivered(self, delivery_stream, n, timeout_s)

    def wait_windows_closed(self, app: str | StreamApp, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until stream app `app` has read every record of its source topic that was there at
        the call, closed every window and had Kafka acknowledge every row it emitted; returns its
        counters. StackError with the last counters seen after `timeout_s` seconds."""
        from tidelake.testing.waits import wait_windows_closed

        return wait_windows_closed(self, app, timeout_s)

    def run_app(
        self,
        spec: str | Path | dict[str, Any],
        timeout_s: float = 60.0,
        *,
        source: str | None = None,
        sink_topic: str | None = None,
        name: str | None = None,
        time_field: str | None = None,
        idle_timeout: str | None = None,
    ) -> StreamApp:
        """Start a stream app against the stack (`tidelake stream run ... --reset`): `spec` is a TOML
        spec's path, a shipped app's name, the spec's fields as a dict, or a Kinesis Data Analytics
        SQL program (a `.sql` path or its text; `source`, `sink_topic`, `name`, `time_field` and
        `idle_timeout` are then its `--sql` options). Returns once the app runs (on the status
        board); stopped by `reset()` or at the stack's end. StackError with the app's log if not."""
        from tidelake.testing.apps import start_app

        sql_options = {
            "source": source,
            "sink_topic": sink_topic,
            "name": name,
            "time_field": time_field,
            "idle_timeout": idle_timeout,
        }
        app = start_app(self, spec, timeout_s, sql_options)
        self.apps.append(app)
        self.pids.append(app.pid)
        return app

    def stop_apps(self) -> None:
        while self.apps:
            self.apps.pop().stop()


@contextlib.contextmanager
def start_stack(
    folder: Path,
    *,
    hook_modules: Sequence[str] = (),
    python_path: Sequence[Path] = (),
    timeout_s: float = START_TIMEOUT_S,
    fast_start: bool = True,
) -> Iterator[TidelakeStack]:
    """Start the broker and serve in `folder` (lake/, state/, serve.log, kafka/) and yield the stack;
    stop everything at the end. `hook_modules` may be named by Firehose transform hooks
    (`serve --firehose-hook-module`), importable from `python_path`. StackError when serve does
    not listen or the broker does not start within `timeout_s` seconds. `fast_start`: a local
    broker's JVM starts with `tidelake.testing.brokers.FAST_START_JVM_OPTIONS` (False: its defaults)."""
    started = time.monotonic()
    lake, state = folder / "lake", folder / "state"
    lake.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    choice = choose_kafka(folder, fast_start=fast_start)
    port = free_port()
    log_path = folder / "serve.log"
    with contextlib.ExitStack() as exits:
        broker = _BrokerThread(choice.running)
        broker.start()
        exits.callback(broker.stop)
        serve = _start_serve(port, lake, state, choice.address, log_path, hook_modules, python_path)
        exits.callback(_stop_process, serve)
        stack = TidelakeStack(
            f"http://127.0.0.1:{port}",
            choice.address,
            lake,
            state,
            broker_label=choice.label,
            serve_log=log_path,
            pids=[serve.pid],
        )
        exits.callback(stack.stop_apps)
        deadline = started + timeout_s
        _wait_listening(serve, port, deadline, log_path)
        stack.serve_ready_s = time.monotonic() - started
        broker.wait(deadline)
        stack.broker_ready_s = broker.ready_at - started
        if not choice.owned:
            stack.foreign_topics = _topics(choice.address)
        stack.pids.extend(_broker_pids(folder / "kafka"))
        stack.start_s = time.monotonic() - started
        yield stack


class _BrokerThread:
    """The broker's context manager entered in a thread of its own (it blocks until Kafka answers)."""

    def __init__(self, running: Any) -> None:
        self._running = running
        self._manager: Any = None
        self._error: BaseException | None = None
        self.ready_at = 0.0
        self._thread = threading.Thread(target=self._enter, name="tidelake-broker", daemon=True)

    def _enter(self) -> None:
        try:
            manager = self._running()
            manager.__enter__()
            self._manager = manager
            self.ready_at = time.monotonic()
        except BaseException as exc:  # re-raised by wait() in the caller's thread
            self._error = exc

    def start(self) -> None:
        self._thread.start()

    def wait(self, deadline: float) -> None:
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._error is not None:
            msg = f"the Kafka broker did not start: {self._error}"
            raise StackError(msg) from self._error
        if self._thread.is_alive():
            msg = "the Kafka broker did not answer in time"
            raise StackError(msg)

    def stop(self) -> None:
        self._thread.join(STOP_TIMEOUT_S)
        if self._manager is not None:
            self._manager.__exit__(None, None, None)
            self._manager = None


def _start_serve(
    port: int,
    lake: Path,
    state: Path,
    bootstrap: str,
    log_path: Path,
    hook_modules: Sequence[str],
    python_path: Sequence[Path],
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tidelake.cli", "serve", "--port", str(port), "--lake", str(lake)]
    command += ["--bootstrap-servers", bootstrap, "--test-routes"]
    for module in hook_modules:
        command += ["--firehose-hook-module", module]
    paths = [str(p) for p in python_path] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    env = {
        **os.environ,
        "TIDELAKE_RUNTIME__STATE_DIR": str(state),
        "TIDELAKE_STREAM__STATE_DIR": str(state / "apps"),
        "PYTHONPATH": os.pathsep.join(paths),
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait_listening(process: subprocess.Popen[bytes], port: int, deadline: float, log_path: Path) -> None:
    pause = threading.Event()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {process.returncode}" if process.returncode is not None else "timed out"
                msg = (
                    f"tidelake serve did not listen on port {port} ({why}); its log:\n{log_path.read_text()}"
                )
                raise StackError(msg) from None
            pause.wait(0.05)


def _stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _topics(address: str) -> list[str]:
    from core.admin import admin_client

    with admin_client(address) as admin:
        return sorted(admin.list_topics())


def _broker_pids(data_dir: Path) -> list[int]:
    """The local broker's JVM, from its state file (none for Docker or an external broker)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return [int(json.loads((data_dir / "broker.json").read_text())["pid"])]
    return []
