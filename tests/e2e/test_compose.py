"""docker-compose.yml run without Docker, as `docker compose up -d --wait` would run it, and the
pipeline reconciled exactly.

No machine here has a Docker engine, so each service runs as a local process: the image's
entrypoint (`tidelake`, from the Dockerfile) with the service's own `command`, and the image's and
the service's own `environment` (the `x-tidelake` anchor merged in). What Docker would provide comes
from one explicit table (`Docker`): the service hostname `kafka` is 127.0.0.1, the test's own broker
stands in for the `kafka` service, the volumes are folders of the test, serve's port is a free one.
A variable, volume, path, port or key the table does not know fails the test, so the file cannot
drift away from what is exercised here.

`depends_on` is honoured in order and by condition (service_healthy runs the service's own
healthcheck, service_completed_successfully waits for exit 0). The replay is killed once mid-pass
and started again with the same command, as `restart: unless-stopped` does after a crash; it
resumes without sending an event twice. It loops forever, so it is stopped (SIGTERM, as `docker
compose stop`) once the restarted replay's first pass is in, and the lake is reconciled against
what the topic holds.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.admin import describe_topics
from core.settings import load_settings
from core.topics import CLICKSTREAM_EVENTS, dlq_topic
from producers.resume import id_ends, pass_of
from tests.e2e.pipeline_checks import (
    REPO,
    app_mismatches,
    lake_rows,
    processes_with_env,
    read_dataset,
    sample_events,
    topic_events,
)
from tests.unit.test_compose import compose
from tidelake.broker import LocalBroker, free_port
from tidelake.status import collect_status

pytestmark = pytest.mark.e2e

DOCKERFILE = REPO / "Dockerfile"
#: The image's ENTRYPOINT, installed by `make install` next to this Python.
TIDELAKE = Path(sys.executable).with_name("tidelake")
SAMPLE_LINES = 10_000
#: The replay's pace, set as a user would (`REPLAY_SPEED=250 docker compose up`): a pass of the
#: sample (2,443 s of event time) in about 10 s.
REPLAY_SPEED = "250"
#: Events in the topic when the replay is killed: a crash in the middle of pass 0.
KILL_AFTER = 2_000
#: `docker stop`'s grace before SIGKILL.
STOP_GRACE_S = 10.0
SERVICE_KEYS = {"build", "image", "environment", "volumes", "restart", "depends_on", "command", "ports",
                "healthcheck", "hostname"}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


class Docker:
    """What Docker provides, as an explicit table from the names the files use to this machine."""

    def __init__(self, root: Path, bootstrap: str, serve_port: int) -> None:
        broker_port = bootstrap.rpartition(":")[2]
        self.root = root
        #: `volumes:` of the services -> folders of the test
        self.volumes = {"./lake:/lake": root / "lake", "tidelake-state:/state": root / "state"}
        #: paths inside a container: the volumes, and the image's /app/data (`COPY data ./data`)
        self.paths = {"/lake": root / "lake", "/state": root / "state", "/app/data": REPO / "data"}
        #: addresses: the hostname kafka is 127.0.0.1 and the test's broker replaces the kafka service
        self.addresses = {
            "kafka:19092": bootstrap,  # the listener containers use
            "localhost/9092": f"127.0.0.1/{broker_port}",  # kafka's healthcheck (bash's /dev/tcp)
            "127.0.0.1:8080": f"127.0.0.1:{serve_port}",  # serve's healthcheck
        }
        #: whole command arguments: serve listens on its container's interfaces (here: loopback)
        #: at 8080 (here: a free port)
        self.arguments = {"0.0.0.0": "127.0.0.1", "8080": str(serve_port)}
        #: `ports:` each service publishes
        self.ports = {"kafka": ["9092:9092"], "serve": ["8080:8080"]}
        #: variables of the image (Dockerfile ENV) and of the services; values are localised
        self.variables = {
            "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS", "TIDELAKE_LAKE__ROOT", "TIDELAKE_STREAM__STATE_DIR",
            "TIDELAKE_RUNTIME__STATE_DIR", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
            "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK",
        }  # fmt: skip
        #: the image's python (healthchecks) is the one that runs tidelake here
        self.programs = {"python": sys.executable}

    def localise(self, value: str, *, argument: bool = False) -> str:
        """`value` as this machine reads it; fails on a container path or service address it does not know."""
        if argument and value in self.arguments:
            return self.arguments[value]
        for container, local in self.addresses.items():
            value = value.replace(container, local)
        for container, local in self.paths.items():
            if value == container or value.startswith(container + "/"):
                return str(local) + value[len(container) :]
        if value.startswith("/"):
            pytest.fail(f"the table does not map the container path {value!r}")
        if re.search(r"\b(kafka|localhost|serve):\d+", value):
            pytest.fail(f"the table does not map the address in {value!r}")
        return value


def image_config() -> tuple[list[str], dict[str, str]]:
    """The Dockerfile's ENTRYPOINT and ENV; the image must hold what the table maps."""
    text = DOCKERFILE.read_text()
    assert "\\\n" not in text, "a Dockerfile line continues: read it here first"
    entrypoint: list[str] = []
    env: dict[str, str] = {}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
    assert "WORKDIR /app" in text and "COPY data ./data" in text  # /app/data in the table
    return entrypoint, env


def seconds(duration: str) -> float:
    """A compose duration ("5s", "500ms", "1m") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, f"a duration the test cannot read: {duration!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


class Service:
    """One compose service as a local process (`docker compose` for one container)."""

    def __init__(self, name: str, spec: dict[str, Any], docker: Docker) -> None:
        unknown = set(spec) - SERVICE_KEYS
        assert not unknown, f"{name}: keys the test does not run: {unknown}"
        self.name, self.spec, self.docker = name, spec, docker
        self.process: subprocess.Popen[bytes] | None = None
        self.log = docker.root / "logs" / f"{name}.log"
        self.depends_on: dict[str, str] = {
            dep: (cond or {}).get("condition", "service_started")
            for dep, cond in (
                spec.get("depends_on", {}).items()
                if isinstance(spec.get("depends_on"), dict)
                else dict.fromkeys(spec.get("depends_on", [])).items()
            )
        }
        assert set(self.depends_on.values()) <= CONDITIONS, (name, self.depends_on)
        assert spec.get("ports", []) == docker.ports.get(name, []), f"{name}: ports {spec.get('ports')}"
        assert spec.get("restart", "no") in ("no", "unless-stopped"), (name, spec.get("restart"))
        if name == "kafka":  # the test's broker stands in
            return
        for volume in spec.get("volumes", []):
            assert volume in docker.volumes, f"{name}: the table does not know the volume {volume!r}"
        entrypoint, image_env = image_config()
        assert entrypoint == ["tidelake"], entrypoint
        self.argv = [str(TIDELAKE), *(docker.localise(a, argument=True) for a in spec["command"])]
        variables = {**image_env, **spec.get("environment", {})}
        unknown = set(variables) - docker.variables
        assert not unknown, f"{name}: variables the table does not know: {unknown}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TIDELAKE_")},  # only the file's
            **{k: docker.localise(str(v)) for k, v in variables.items()},
        }

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        workdir = self.docker.root / "app"  # the image's WORKDIR, empty of anything but what it writes
        workdir.mkdir(exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        if self.running():
            os.killpg(self.process.pid, signum)  # type: ignore[union-attr]

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after the grace, as `docker stop`; the exit code."""
        assert self.process is not None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait(timeout=30)

    def healthy(self) -> bool:
        """The service's own healthcheck, localised, passes once."""
        check = self.spec["healthcheck"]
        kind, *test = check["test"]
        if kind == "CMD":
            program, *args = test
            argv = [self.docker.programs.get(program, program), *map(self.docker.localise, args)]
        else:
            assert kind == "CMD-SHELL", check["test"]
            argv = ["/bin/sh", "-c", *map(self.docker.localise, test)]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=seconds(check.get("timeout", "30s")))
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def wait_healthy(self) -> None:
        """Healthy within the healthcheck's own bounds (start_period, then `retries` tries); the
        check runs every 0.5 s rather than every `interval`, which changes the pace, not the meaning."""
        check = self.spec["healthcheck"]
        bound = seconds(check.get("start_period", "0s")) + check.get("retries", 3) * seconds(
            check.get("interval", "30s")
        )
        wait_for(self.healthy, bound, f"{self.name} to become healthy ({check['test']})", self)

    def wait_completed(self) -> None:
        assert self.process is not None
        code = self.process.wait(timeout=120)
        assert code == 0, f"{self.name} exited with {code}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 30) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


def wait_for(
    done: Callable[[], bool],
    timeout_s: float,
    what: str,
    service: Service | None = None,
    describe: Callable[[], str] | None = None,
) -> None:
    """Poll `done` every 0.5 s; fail after `timeout_s` (with `describe()` or the service's log) or
    as soon as `service` exits."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if service is not None and service.name != "kafka" and not service.running():
            pytest.fail(f"{service.name} exited while waiting for {what}:\n{service.log_tail()}")
        if time.monotonic() > deadline:
            detail = describe() if describe else service.log_tail() if service else ""
            pytest.fail(f"waited {timeout_s:.0f} s for {what}:\n{detail}")
        time.sleep(0.5)


class Stack:
    """`docker compose up -d --wait` / `down` for the services of one file."""

    def __init__(self, file: dict[str, Any], docker: Docker) -> None:
        # `docker compose up` without --profile starts no service that names a profile (the flink
        # profile: tests/unit/test_compose_flink.py checks it), nor makes the volumes only they use
        services = {name: spec for name, spec in file["services"].items() if not spec.get("profiles")}
        used = {v.partition(":")[0] for spec in services.values() for v in spec.get("volumes", [])}
        for volume in set(file.get("volumes", {})) & used:
            assert any(v.startswith(f"{volume}:") for v in docker.volumes) or volume == "kafka-data", volume
        self.services = {name: Service(name, spec, docker) for name, spec in services.items()}

    def start_order(self) -> list[str]:
        """Services in dependency order, the file's order among equals."""
        order: list[str] = []
        pending = list(self.services)
        while pending:
            ready = [n for n in pending if set(self.services[n].depends_on) <= set(order)]
            assert ready, f"depends_on has a cycle among {pending}"
            order.append(ready[0])
            pending.remove(ready[0])
        return order

    def up(self) -> None:
        for name in self.start_order():
            service = self.services[name]
            for dep, condition in service.depends_on.items():
                if condition == "service_healthy":
                    self.services[dep].wait_healthy()
                elif condition == "service_completed_successfully":
                    self.services[dep].wait_completed()
            if name != "kafka":
                service.start()
        for service in self.services.values():  # --wait: running, and healthy where a check says so
            if "healthcheck" in service.spec:
                service.wait_healthy()
            elif service.spec.get("restart") == "unless-stopped":
                assert service.running(), f"{service.name} exited:\n{service.log_tail()}"

    def down(self) -> dict[str, int]:
        """Stop every service still running, newest first; their exit codes."""
        codes = {}
        for name in reversed(self.start_order()):
            service = self.services[name]
            if service.running():
                service.signal(signal.SIGTERM)
        for name in reversed(self.start_order()):
            service = self.services[name]
            if service.process is not None:
                codes[name] = service.stop()
        return codes


def topic_records(bootstrap: str) -> int:
    return sum(t.records for t in describe_topics(bootstrap, [CLICKSTREAM_EVENTS]))


def lake_differences(lake: Path, events: list[dict[str, Any]]) -> dict[str, str]:
    """How the lake differs from what was sent: the raw events (each once), no late event (the
    replay's restart leaves partitions behind, and a partition behind holds the watermark), and
    every app's dataset against DuckDB's GROUP BY of the events."""
    late: dict[str, set[str]] = collections.defaultdict(set)
    for row in lake_rows(lake, "late_events"):
        late[row["app"]].add(row["event"]["event_id"])
    problems = app_mismatches(lake, events)
    if late:  # the replay's restart must not make a backlog late (a partition behind is not idle)
        problems["late_events"] = ", ".join(f"{app}: {len(ids)}" for app, ids in sorted(late.items()))
    table = read_dataset(lake / "clickstream_events", "SELECT event_id FROM read_parquet({files})")
    raw = sorted([] if table is None else table["event_id"].to_pylist())
    sent = sorted(e["event_id"] for e in events)
    if raw != sent:
        problems["clickstream_events"] = f"{len(raw)} rows of {len(set(raw))} ids; {len(sent)} events sent"
    return problems


class Settled:
    """The pipeline has taken in `sent` events and gone quiet, for `hold_s` in a row: every stream app
    has read them all, closed its windows and sent its rows, every delivery stream has flushed, the
    lake holds every raw event (longer than the delivery streams' 5 s buffer interval, so a row in
    flight between an app and a delivery stream shows as buffered on the way)."""

    def __init__(
        self, settings: Any, sent: int, apps: set[str], sinks: set[str], hold_s: float = 6.0
    ) -> None:
        self.settings, self.sent, self.apps, self.sinks, self.hold_s = settings, sent, apps, sinks, hold_s
        self.since: float | None = None
        self.last = ""

    def quiet(self) -> bool:
        status = collect_status(self.settings, with_groups=False)
        board = {(p.kind, p.name): p.metrics for p in status.processes}
        waiting = [
            f"stream {app}: {board.get(('stream', app))}" for app in sorted(self.apps)
            if not (metrics := board.get(("stream", app)))
            or (metrics.get("events_in"), metrics.get("windows_open"), metrics.get("rows_pending")) != (self.sent, 0, 0)
        ] + [
            f"sink {sink}: {board.get(('sink', sink))}" for sink in sorted(self.sinks)
            if (board.get(("sink", sink)) or {}).get("buffered") != 0
        ]  # fmt: skip
        raw = next((d.rows for d in status.datasets if d.name == "clickstream_events"), 0)
        if raw != self.sent:
            waiting.append(f"clickstream_events holds {raw} rows")
        self.last = "; ".join(waiting)
        return not waiting

    def __call__(self) -> bool:
        if not self.quiet():
            self.since = None
            return False
        now = time.monotonic()
        self.since = now if self.since is None else self.since
        return now - self.since >= self.hold_s


def test_compose_file_runs_without_docker_restarts_the_replay_and_reconciles(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    bootstrap = own_broker.read_state().bootstrap_servers  # type: ignore[union-attr]
    docker = Docker(tmp_path, bootstrap, free_port())
    stack = Stack(compose({"REPLAY_SPEED": REPLAY_SPEED}), docker)
    replay = stack.services["replay"]
    assert replay.spec["restart"] == "unless-stopped"
    commands = [s.spec.get("command", []) for s in stack.services.values()]
    apps = {c[2] for c in commands if c[:2] == ["stream", "run"]}
    sinks = {c[2] for c in commands if c[:2] == ["sink", "run"]}
    assert (len(apps), len(sinks)) == (6, 4)
    settings = load_settings(
        kafka={"bootstrap_servers": bootstrap},
        lake={"root": docker.paths["/lake"]},
        runtime={"state_dir": docker.paths["/state"] / "run"},
    )
    compactors = {("compactor", "compactor") for c in commands if c[:3] == ["sink", "compact", "--watch"]}
    assert len(compactors) == 1
    publishers = {("stream", a) for a in apps} | {("sink", s) for s in sinks} | compactors
    try:
        stack.up()
        # a crash of the looping replay in the middle of a pass (the first, unless starting the
        # stack took longer than a pass), and the restart `restart: unless-stopped` makes
        wait_for(
            lambda: topic_records(bootstrap) % SAMPLE_LINES >= KILL_AFTER, 120, "a pass half-way", replay
        )
        replay.signal(signal.SIGKILL)
        assert replay.process is not None and replay.process.wait(timeout=30) == -signal.SIGKILL
        before = topic_events(bootstrap, topic_records(bootstrap))
        replay.start()
        # the restarted replay's first pass is in (and a little of its next): stop it as compose would
        wait_for(
            lambda: topic_records(bootstrap) >= len(before) + SAMPLE_LINES + 200, 120,
            "the restarted replay's first pass", replay,
        )  # fmt: skip
        assert replay.stop() == 130  # SIGTERM: it flushes, prints its summary and says it was interrupted

        # every event once, across the crash: whole passes, the one the crash cut, then whole passes
        sent = topic_events(bootstrap, topic_records(bootstrap))
        assert len({e["event_id"] for e in sent}) == len(sent)
        ends = id_ends([e["event_id"] for e in sample_events()])
        passes_before = collections.Counter(pass_of(e["event_id"], ends) for e in before)
        cut = max(passes_before)  # type: ignore[type-var]
        assert passes_before == {**dict.fromkeys(range(cut), SAMPLE_LINES), cut: passes_before[cut]}
        assert KILL_AFTER <= passes_before[cut] < SAMPLE_LINES
        before_ids = {e["event_id"] for e in before}
        passes_after = collections.Counter(
            pass_of(e["event_id"], ends) for e in sent if e["event_id"] not in before_ids
        )
        resumed = " ".join(replay.log.read_text().split())
        assert f"replay (interrupted) from pass {cut + 1}: sent" in resumed, resumed[-2000:]
        assert passes_after[cut + 1] == SAMPLE_LINES  # a new pass, new ids and later times, sent whole
        assert sorted(passes_after) == [cut + 1, cut + 2]

        # `docker compose exec serve tidelake status --json`: every stream app and delivery stream alive
        status = subprocess.run(
            [str(TIDELAKE), "status", "--json"], env=stack.services["serve"].env, cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        shown = {(p["kind"], p["name"]): p["alive"] for p in json.loads(status.stdout)["processes"]}
        assert shown == dict.fromkeys(publishers, True)
        (dlq,) = describe_topics(bootstrap, [dlq_topic(CLICKSTREAM_EVENTS)])
        assert dlq.records == 0

        # the lake holds exactly what was sent: every event once, every window DuckDB computes
        lake = docker.paths["/lake"]
        settled = Settled(settings, len(sent), apps, sinks)
        wait_for(
            settled, 120, "the pipeline to take in every event and settle", describe=lambda: settled.last
        )
        assert lake_differences(lake, sent) == {}
        for service in stack.services.values():
            if service.name not in ("kafka", "topics", "replay"):
                assert service.running(), f"{service.name} exited:\n{service.log_tail()}"
    finally:
        stack.down()
    assert processes_with_env("TIDELAKE_RUNTIME__STATE_DIR", str(docker.paths["/state"] / "run")) == []
    # after `docker compose down` status shows them stopped at once (marked on the way out, or killed)
    board = collect_status(settings, with_groups=False).processes
    assert {(p.kind, p.name): p.alive for p in board} == dict.fromkeys(publishers, False)
