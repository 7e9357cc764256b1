"""A document's sandbox: the folders, broker, query server and environment its blocks run in.

Each document (README.md, docs/sinks.md, ...) gets its own, so that it runs as written, with the
default names it shows (`clickstream.events`, `lake/`, the default consumer groups), and nothing of
the user's is touched:

- a working folder holding links to what commands read (`data/`, `.venv`, `sinks/`, ...) and a
  `lake/` of its own (empty, or a copy of the session's sample lake for documents that query
  without filling one);
- `XDG_DATA_HOME` inside the sandbox, so the broker's data, the runtime board and the stream
  apps' state go to their defaults there (`~/.local/share/tidelake/...` in the doc);
- every `TIDELAKE_*` variable of the caller removed, then the broker's port and controller port
  set to free ports (`TIDELAKE_BROKER__PORT`, `__CONTROLLER_PORT`) and the clients pointed at it
  (`TIDELAKE_KAFKA__BOOTSTRAP_SERVERS`): `tidelake broker start` written in a doc runs unchanged
  and starts this sandbox's broker, never the user's at 9092;
- a fresh broker, started with `tidelake broker start` before the first block that talks to
  Kafka, when the document does not start one itself (its prose says "on a fresh broker");
- a query server (`tidelake serve --lake lake --port <free>`), started before the first block that
  reaches port 8080.

Port numbers written in a block (`:9092`, `:8080`) are replaced by the sandbox's before it runs,
and the sandbox's ports and folders are written back as the doc's defaults before comparing output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tidelake.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: What the documents' commands read from the checkout, linked into each working folder.
LINKED = ("data", ".venv", "sinks", "stream_apps", "queries", "producers", "core", "tests", "pyproject.toml")
#: Commands and code that talk to Kafka: a document's broker is started before the first of them.
KAFKA_WORDS = re.compile(
    r"tidelake (?:replay|generate|agent|topics|sink run|stream run|status)|StreamClient|DeliveryStream"
    r'|boto3\.client\("kinesis"|aws .*kinesis'
)
SERVER_WORDS = re.compile(r"(?:127\.0\.0\.1|localhost):8080")
COMMAND_TIMEOUT_S = 120.0


class Sandbox:
    def __init__(self, root: Path, name: str, sample_lake: Path | None) -> None:
        self.root = root
        self.work = root / "work"
        self.data_home = root / "h"
        self.work.mkdir(parents=True)
        self.data_home.mkdir()
        for name_ in LINKED:
            (self.work / name_).symlink_to(ROOT / name_)
        if sample_lake is not None:
            shutil.copytree(sample_lake, self.work / "lake", symlinks=True)
        self.broker_port = free_port()
        self.server_port = free_port()
        self.broker_started = False
        self.last_status = 0  # of the last command, for a `$ echo $?` after it
        self.server: subprocess.Popen[bytes] | None = None
        env = {key: value for key, value in os.environ.items() if not key.startswith("TIDELAKE_")}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            XDG_DATA_HOME=str(self.data_home),
            TIDELAKE_BROKER__PORT=str(self.broker_port),
            TIDELAKE_BROKER__CONTROLLER_PORT=str(free_port()),
            TIDELAKE_BROKER__HEAP="512m",
            TIDELAKE_BROKER__START_TIMEOUT_S="300",  # a busy 2-core CI box; the default is 90
            TIDELAKE_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{self.broker_port}",
            COLUMNS="80",
            NO_COLOR="1",
            TERM="dumb",
            PYTHONUNBUFFERED="1",
        )
        env.pop("FORCE_COLOR", None)
        self.env = env
        self.name = name

    # ---- what a block needs before it runs ---------------------------------------------------

    def prepare(self, text: str) -> str:
        """Start what `text` needs (broker, query server) and return it with the sandbox's ports."""
        if KAFKA_WORDS.search(text) and "broker start" not in text and not self.broker_started:
            self.start_broker()
        if SERVER_WORDS.search(text) and self.server is None:
            self.start_server()
        text = re.sub(r"(?<=:)9092\b", str(self.broker_port), text)
        return re.sub(r"(?<=:)8080\b", str(self.server_port), text)

    def start_broker(self) -> None:
        result = self.run("tidelake broker start", timeout_s=180)
        if result.returncode != 0:
            raise RuntimeError(f"the document's broker did not start:\n{result.stdout}")
        self.broker_started = True

    def start_server(self) -> None:
        (self.work / "lake").mkdir(exist_ok=True)
        self.server = subprocess.Popen(
            ["tidelake", "serve", "--lake", "lake", "--port", str(self.server_port)],
            cwd=self.work, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"tidelake serve exited with {self.server.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.server_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("tidelake serve did not listen within 60 s")

    # ---- running -------------------------------------------------------------------------------

    def run(self, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run one shell command in the working folder; stdout and stderr together, as on a terminal."""
        return subprocess.run(
            ["bash", "-c", command], cwd=self.work, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip

    def run_until_caught_up(self, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> tuple[int, str]:
        """Run a command the doc stops with Ctrl-C: SIGINT once the status board entry it publishes
        shows it has caught up (a stream app: no window open, nothing pending, rows out), as the
        reader would press Ctrl-C after seeing that on its progress line."""
        board = self.data_home / "tidelake" / "run"
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=self.work, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{command!r} did not catch up within {timeout_s:.0f} s")
                if _caught_up(board, process.pid):
                    process.send_signal(signal.SIGINT)
                    break
                time.sleep(0.2)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return process.returncode, output

    def to_doc(self, text: str) -> str:
        """Real output as the doc writes it: the sandbox's folders and ports as the defaults."""
        text = text.replace(str(self.data_home), "~/.local/share")
        text = text.replace(str(self.work) + "/", "").replace(str(self.work), ".")
        text = re.sub(rf"(?<=:){self.broker_port}\b", "9092", text)
        return re.sub(rf"(?<=:){self.server_port}\b", "8080", text)

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        # whatever the document left running on its broker (started by it or for it) stops here
        self.run("tidelake broker stop", timeout_s=120)


def _caught_up(board: Path, pid: int) -> bool:
    if not board.exists():
        return False
    for entry in board.glob("*.json"):
        try:
            status = json.loads(entry.read_text())
            metrics = status["metrics"]
        except (OSError, ValueError, KeyError):
            continue
        if (
            status.get("pid") == pid
            and metrics.get("windows_open") == 0
            and metrics.get("rows_pending", 0) == 0
            and metrics.get("rows_out", 0) > 0
        ):
            return True
    return False
