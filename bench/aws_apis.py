"""What the AWS-API benchmarks (`bench/kinesis.py`, `bench/firehose.py`) share: the two servers they
run side by side, the boto3 clients they drive both with, and the events they send.

- `tidelake_serve(...)`: a real `tidelake serve` subprocess on a free port, on the bench broker, with
  a lake of its own; stopped by its PID.
- `ministack_server(...)`: MiniStack (PyPI `ministack`, the bench extra), run as its own server
  (`python -m ministack`, foreground, `GATEWAY_PORT` = a free port, `BIND_HOST` = 127.0.0.1, only the
  services the benchmarks use, access logs off as serve's are); stopped by its PID. It runs with the
  bench's Python when `ministack` is importable there, else with `MINISTACK_PYTHON` (the path of a
  Python that has it).
- `Server.cpu_seconds()`, `cpu_seconds(pid)`: the CPU time a process has used (utime + stime from
  /proc), so a benchmark can say how much of a phase was the client's, the server's and (ours) the
  Kafka broker's work (`bench_broker_pid`), and how much was waiting.
- `client(...)`: one boto3 client per side, built identically (no retries: a failure must show).
- `event(...)`: a ~200-byte clickstream-like JSON event whose `event_id` is unique within a run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from bench.harness import REPO_ROOT
from tidelake.broker import free_port

MINISTACK_VERSION = "1.5.33"
#: MiniStack's services the benchmarks touch (SERVICES: the others are not loaded).
MINISTACK_SERVICES = "kinesis,firehose,s3,glue,athena"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def event(index: int, prefix: str = "e", now_us: int | None = None) -> bytes:
    """A clickstream-like JSON event of about 200 bytes; `event_id` is `<prefix>-<index>` (or
    `<prefix>-<now_us>-<index>` for freshness runs, the put time riding in the id)."""
    ident = f"{prefix}-{now_us}-{index}" if now_us is not None else f"{prefix}-{index:09d}"
    minute, second = divmod(index // 10 % 3600, 60)
    return (
        f'{{"event_id":"{ident}","event_time":"2026-11-30T{index // 36000 % 24:02d}:{minute:02d}:'
        f'{second:02d}.{index % 1_000_000:06d}Z","visitor_id":"v{index % 9973}","method":"GET",'
        f'"page":"/product/{index % 500}","status":{200 if index % 20 else 404},"bytes":{1000 + index % 9000},'
        f'"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","is_bot":{"true" if index % 31 == 0 else "false"}}}'
    ).encode()


def event_id(data: bytes) -> str:
    return json.loads(data)["event_id"]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-1) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def client(service: str, endpoint: str):
    """A boto3 client for `service` at `endpoint`: the same for both sides (no retries, so a
    throttle or failure shows instead of being hidden)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}, read_timeout=120, max_pool_connections=4),
    )


@dataclass(frozen=True)
class Server:
    """A server subprocess the benchmark started: its endpoint URL and PID."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the process has used so far (all its threads)."""
        return cpu_seconds(self.pid)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds process `pid` has used so far (0 when unknown or gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_broker_pid(scratch: Path) -> int | None:
    """The PID of the local Kafka the harness started for this run (None when the run uses the
    broker of TIDELAKE_KAFKA__BOOTSTRAP_SERVERS): its `broker.json` beside the benchmarks' folders."""
    try:
        return int(json.loads((scratch.parent / "kafka" / "broker.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _wait_listening(process: subprocess.Popen, port: int, log: Path, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"{name} did not listen on port {port}; its log ({log}):\n{log.read_text()[-3000:]}"
                raise RuntimeError(msg) from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    """Stop the server we started, by its PID: SIGTERM, then SIGKILL if it does not exit."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def tidelake_serve(bootstrap_servers: str, lake: Path, scratch: Path) -> Iterator[Server]:
    """`tidelake serve --port P --lake LAKE` on the bench broker, until the block ends."""
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "TIDELAKE_QUERY__RESULTS_DIR": str(scratch / "results"),
    }
    executable = Path(sys.executable).with_name("tidelake")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "tidelake.cli"]
    log = scratch / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--lake", str(lake)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
    try:
        _wait_listening(process, port, log, "tidelake serve")
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        _stop(process)


def ministack_python() -> str:
    """The Python that runs MiniStack: ours if it has `ministack`, else `MINISTACK_PYTHON`."""
    if importlib.util.find_spec("ministack") is not None:
        return sys.executable
    other = os.environ.get("MINISTACK_PYTHON")
    if other:
        return other
    msg = (
        f"MiniStack is not installed: `pip install ministack=={MINISTACK_VERSION}` (the bench extra, "
        "make install), or set MINISTACK_PYTHON to a Python that has it"
    )
    raise RuntimeError(msg)


def ministack_version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('ministack'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


@contextmanager
def ministack_server(scratch: Path) -> Iterator[Server]:
    """MiniStack in the foreground on a free port, until the block ends."""
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "SERVICES": MINISTACK_SERVICES,
        "LOG_LEVEL": "WARNING",  # serve runs uvicorn at warning: neither logs each request
        "TMPDIR": str(scratch),  # its PID file and temporary files
        "S3_DATA_DIR": str(scratch / "s3"),
    }
    log = scratch / "ministack.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [ministack_python(), "-m", "ministack"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=scratch,
        )
    try:
        _wait_listening(process, port, log, "MiniStack")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # its port opens before its services answer
            try:
                with urllib.request.urlopen(f"{url}/_ministack/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Server(url, process.pid)
    finally:
        _stop(process)


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (the machine is shared: noted beside the figures)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
