"""Stream apps run against a test stack: `tidelake stream run SPEC --reset` as a child process.

    app = start_app(stack, {"name": "orders-1m", "source": "orders", "window": "tumbling:60s",
                            "aggregates": ["count"], "idle_timeout": "1s"}, timeout_s=60)
    app.name, app.source, app.sink_topic     # from the spec
    app.stop()                               # SIGINT, as Ctrl-C: the app checkpoints and exits

The spec is a TOML file (`stream_apps/specs/*.toml`'s fields), a shipped app's name, or those fields
as a dict (written to a TOML file in the stack's state folder); or a Kinesis Data Analytics SQL
program (docs/kda-sql.md): a `.sql` file, a shipped program's name with `.sql`, or its text. The app reads its source from the
start (`--reset`), keeps its state under the stack's state folder and publishes its counters on
the stack's status board, which `TidelakeStack.wait_windows_closed` watches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidelake.testing.stack import STOP_TIMEOUT_S, StackError

if TYPE_CHECKING:
    from tidelake.testing.stack import TidelakeStack

LOG_TAIL_CHARS = 3_000


@dataclass
class StreamApp:
    """A running stream app (see the module docstring)."""

    name: str
    source: str
    sink_topic: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        return self.process.poll() is not None

    def returncode(self) -> int | None:
        return self.process.poll()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Ctrl-C (SIGINT), then SIGKILL after `STOP_TIMEOUT_S`; returns when the process is gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    msg = f"a stream app spec value must be a string, number, boolean or list, got {value!r}"
    raise StackError(msg)


def spec_file(stack: TidelakeStack, spec: str | Path | dict[str, Any]) -> Path | str:
    """The spec as `tidelake stream run` takes it: a dict is written to `<state>/specs/<name>.toml`."""
    if not isinstance(spec, dict):
        return spec
    if "name" not in spec:
        msg = f"a stream app spec needs a name: {spec}"
        raise StackError(msg)
    folder = stack.state_dir / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec['name']}.toml"
    path.write_text("".join(f"{key} = {_toml_value(value)}\n" for key, value in spec.items()))
    return path


def is_sql(spec: object) -> bool:
    """Whether `spec` is a KDA SQL program: a `.sql` path, or SQL text (it has CREATE in it)."""
    if isinstance(spec, Path):
        return spec.suffix == ".sql"
    return isinstance(spec, str) and (spec.endswith(".sql") or "CREATE " in spec.upper())


def start_app(
    stack: TidelakeStack,
    spec: str | Path | dict[str, Any],
    timeout_s: float,
    sql_options: dict[str, str | None] | None = None,
) -> StreamApp:
    """Start the app and return once it is on the status board (StackError with its log if it exits
    or does not appear within `timeout_s` seconds). A KDA SQL program (`is_sql`) runs with
    `tidelake stream run --sql`, `sql_options` its flags by name (source, sink_topic, name,
    time_field, idle_timeout, allowed_lateness)."""
    from core.errors import TidelakeError
    from stream_apps.catalog import resolve_spec, resolve_sql
    from stream_apps.kda_sql.apps import sql_app_spec

    options = {k: v for k, v in (sql_options or {}).items() if v is not None}
    try:
        if is_sql(spec):
            program = spec
            if isinstance(spec, str) and not spec.endswith(".sql"):  # the program's text
                folder = stack.state_dir / "specs"
                folder.mkdir(parents=True, exist_ok=True)
                program = folder / f"{options.get('name', 'app')}.sql"
                program.write_text(spec)
            loaded = sql_app_spec(resolve_sql(str(program)), **options)  # type: ignore[arg-type]
            run = ["--sql", str(program)]
            for key, value in options.items():
                run += [f"--{key.replace('_', '-')}", value]
        else:
            given = spec_file(stack, spec)
            loaded = resolve_spec(str(given))
            run = [str(given)]
    except TidelakeError as exc:
        msg = f"stream app {spec!r}: {exc}"
        raise StackError(msg) from exc
    logs = stack.state_dir / "apps"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{loaded.name}.log"
    command = [sys.executable, "-m", "tidelake.cli", "stream", "run", *run, "--reset", "--json"]
    command += ["--state-dir", str(stack.state_dir / "apps"), "--bootstrap-servers", stack.bootstrap_servers]
    env = {**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(stack.state_dir)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    app = StreamApp(loaded.name, loaded.source, loaded.sink_topic, process, log_path)
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    from core.status_board import read_board

    while not any(
        e.kind == "stream" and e.name == app.name and e.pid == app.pid for e in read_board(stack.state_dir)
    ):
        if app.exited() or time.monotonic() > deadline:
            app.stop()
            why = f"exited with {app.returncode()}" if app.exited() else f"not running after {timeout_s:g} s"
            msg = f"stream app {app.name} did not start ({why}); its log:\n{app.log_tail()}"
            raise StackError(msg)
        pause.wait(0.1)
    return app
