"""Child processes a command starts and always stops: the demo's one-pass replay.

(The pipeline's own processes are detached and outlive the command: `tidelake.stack`.) Each child
is a `tidelake ...` command in a session of its own (so a terminal's Ctrl-C reaches only us, and we
stop the children in order) with its output in `<log_dir>/<name>.log`. `stop_all` sends SIGTERM,
waits, then SIGKILLs the whole process group of a child that did not leave, so nothing is left
running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import TidelakeError


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"


class Supervisor:
    """Starts `tidelake` sub-commands as child processes and stops them all on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, **(env or {})}
        self.children: list[Child] = []

    def start(self, name: str, *args: str) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        command = [sys.executable, "-m", "tidelake.cli", *args]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        child = Child(name, list(args), log_path, process)
        self.children.append(child)
        return child

    def check_running(self, except_names: set[str] | frozenset[str] = frozenset()) -> None:
        """Raise if a child that should still be running has exited."""
        for child in self.children:
            if child.name in except_names:
                continue
            code = child.process.poll()
            if code is not None:
                msg = f"{child.name} (`tidelake {' '.join(child.args)}`) exited with code {code}; its last lines ({child.log_path}):\n{child.log_tail()}"
                raise TidelakeError(msg)

    def stop_all(self, timeout_s: float = 20.0) -> list[str]:
        """Stop every child, newest first; return the names that needed SIGKILL."""
        killed = []
        for child in reversed(self.children):
            if child.alive:
                signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=10)
                killed.append(child.name)
            signal_group(child.process.pid, signal.SIGKILL)  # grandchildren left in its group
        return killed


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to the process group `pid` leads (a child started in a session of its own), if any."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
