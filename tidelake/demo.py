"""`tidelake demo`: the whole pipeline on a real clickstream, started, watched, answered, left running.

    `tidelake up` (broker, topics, stream apps, delivery streams, query server; reused when they
    already run) -> replay of the shipped sample -> drain (windows closed, files flushed) -> the
    answers of the named queries -> the stack keeps running for the console, boto3 and `tidelake
    status` until `tidelake down` (`--stop`: stopped at once)

A demo that fails or is interrupted before its answers stops what it started itself. Every child
is a `tidelake ...` command, exactly what docker-compose.yml runs in containers.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.admin import admin_client, delete_consumer_groups, describe_topics, group_assignments
from core.errors import ConfigError, TableNotFound, TidelakeError
from core.settings import Settings
from core.status_board import RUNNING
from core.topics import CLICKSTREAM_EVENTS, stream_app_group
from tidelake.diagnosis import Finding, diagnose
from tidelake.stack import (
    DEFAULT_STREAM_RUNTIME,
    DELIVERY_STREAMS,
    STREAM_APPS,
    DownReport,
    Stack,
    StackProcess,
    stack_topics,
)
from tidelake.status import PipelineStatus, collect_status, lake_datasets
from tidelake.supervisor import Supervisor

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shipped sample: 10,000 lines of a real shop's access log spanning 40 min 43 s.
DEFAULT_SAMPLE = REPO_ROOT / "data" / "zanbil-access-10k" / "access-10k.log"
#: Original gaps / 50: the sample's 2,443 s of event time replay in about 49 s.
DEFAULT_SPEED = 50.0
#: Named queries whose answers the demo prints, with their parameters.
DEMO_QUERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("top_pages_per_hour", {"top": "3"}),
    ("bounce_rate", {}),
    ("sessions_per_visitor", {}),
    ("errors_per_minute", {}),
    ("anomalies", {}),
    ("late_events", {}),
)


@dataclass
class DemoOptions:
    sample: Path = DEFAULT_SAMPLE
    speed: float | None = DEFAULT_SPEED  # None = as fast as the broker takes them
    loop: bool = False
    fresh: bool = False
    serve_port: int = 8080
    partitions: int = 4
    #: What hosts the stream apps: "aiokafka" (default) or "faust" (`tidelake.stack.STREAM_RUNTIMES`).
    stream_runtime: str = DEFAULT_STREAM_RUNTIME
    drain_timeout_s: float = 120.0
    #: The drain is over when the pipeline has been quiet (caught up, windows closed, buffers
    #: flushed) for this long: long enough for a row in flight between two processes to show.
    settle_s: float = 2.0


@dataclass
class Answer:
    """A named query's answer as the demo prints it."""

    name: str
    question: str
    columns: list[str]
    rows: list[tuple]
    bytes_scanned: int = 0
    note: str = ""


@dataclass(frozen=True)
class ReplayPlan:
    """What a demo run does about the events, decided from the topic *and* the lake it will query
    (the broker's state is per user, the lake per checkout: one may hold what the other lacks)."""

    replay: bool  # start `replay --resume` (after what the topic holds: never an event twice)
    redeliver: bool  # the delivery streams start over from the topics' beginning, into this lake
    message: str
    #: Raw events the lake will hold once what is in the topic now has been delivered.
    lake_base: int


def plan_replay(topic_events: int, lake_events: int, loop: bool, lake: Path | str = "the lake") -> ReplayPlan:
    """Whether to replay and whether to deliver the topics again, from the events `clickstream.events`
    holds and the raw events (`clickstream_events` rows) the lake holds.

    - nothing anywhere: replay the sample (pass 0);
    - the topic holds events, this lake none (a second checkout, or the lake was removed): the delivery
      streams deliver the topics again from the start into this lake, nothing is replayed twice;
    - both hold events: nothing to do, the lake keeps them;
    - the lake holds events the topic lost (a new broker): replaying pass 0 again would put each of
      them in the lake twice, so it does not replay (--fresh starts over);
    - with --loop, the replay continues after what the topic holds (`replay --resume`), except in the
      last case.
    """
    topic = CLICKSTREAM_EVENTS
    if topic_events == 0 and lake_events == 0:
        return ReplayPlan(True, False, "", 0)
    if topic_events == 0:
        return ReplayPlan(
            False, False,
            f"{lake} holds {lake_events:,} events but {topic} is empty (a new broker?): not replaying, which "
            "would put them in the lake twice; the answers are the lake's. Use --fresh to start from nothing.",
            lake_events,
        )  # fmt: skip
    looping = " --loop: replaying after them, with new event ids and later event times." if loop else ""
    if lake_events == 0:
        return ReplayPlan(
            loop, True,
            f"{topic} already holds {topic_events:,} events from an earlier demo but {lake} holds none of "
            "them: the delivery streams deliver the topics again from their start into this lake."
            + (looping or " Not replaying again. Use --fresh to start from nothing."),
            topic_events,
        )  # fmt: skip
    return ReplayPlan(
        loop, False,
        f"{topic} already holds {topic_events:,} events from an earlier demo and {lake} holds "
        f"{lake_events:,}." + (looping or " Not replaying again (the lake keeps them). Use --fresh to start from nothing."),
        lake_events,
    )  # fmt: skip


class Demo:
    """One run of the demo. `run` returns the report; `stop` leaves nothing of it running."""

    def __init__(self, settings: Settings, options: DemoOptions, *, broker_configured: bool) -> None:
        self.settings = settings
        self.options = options
        self.stack = Stack(
            settings, console_port=options.serve_port, partitions=options.partitions,
            broker_configured=broker_configured, stream_runtime=options.stream_runtime,
        )  # fmt: skip
        #: The replay of one pass: the demo's own child, not part of the stack.
        self.supervisor = Supervisor(self.stack.log_dir)
        self.began = time.monotonic()

    # ------------------------------------------------------------------ steps
    def preflight(self) -> bool:
        """Fail before anything starts (exit 2) on a taken port or a stack running with other
        settings; True when the stack already runs."""
        return self.stack.preflight() is not None

    def start_broker(self) -> str:
        return self.stack.start_broker()

    def reset(self) -> None:
        """--fresh: an empty lake, empty topics and no app state, as on a first run."""
        lake = self.settings.lake.root
        if lake.exists():
            shutil.rmtree(lake)
        for folder in ("stream", "sink"):
            shutil.rmtree(self.settings.runtime.state_dir / folder, ignore_errors=True)
        bootstrap = self.settings.kafka.bootstrap_servers
        with admin_client(bootstrap) as admin:
            existing = set(admin.list_topics())
            doomed = [t.name for t in stack_topics(self.options.partitions) if t.name in existing]
            if doomed:
                admin.delete_topics(doomed)
        # only the demo's own groups: offsets left from old topics would point past the new ends
        delete_consumer_groups(bootstrap, self.consumer_groups())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and describe_topics(bootstrap, [CLICKSTREAM_EVENTS]):
            time.sleep(0.5)  # topic deletion is asynchronous in KRaft

    def events_already_in(self) -> int:
        found = describe_topics(self.settings.kafka.bootstrap_servers, [CLICKSTREAM_EVENTS])
        return found[0].records if found else 0

    def events_in_lake(self) -> int:
        """Raw events (rows of `clickstream_events`) in the lake this demo queries."""
        return next(
            (d.rows for d in lake_datasets(self.settings.lake.root) if d.name == "clickstream_events"), 0
        )

    def redeliver(self) -> None:
        """The delivery streams forget how far they read, so they deliver every topic from its start
        into this lake (another lake got them first). Stream apps keep their state: their output
        topics already hold every window."""
        from sinks.config import load_shipped

        groups = {load_shipped(stream).consumer_group for stream in DELIVERY_STREAMS}
        delete_consumer_groups(self.settings.kafka.bootstrap_servers, groups)

    def start_pipeline(
        self, say: Callable[[str], None] = lambda _: None, before_wait: Callable[[], None] | None = None
    ) -> list[StackProcess]:
        """`tidelake up`: start what does not run yet, wait until every process runs. The demo starts
        its replay in `before_wait`, as the stream apps start: an app that has sat idle for its idle
        timeout (10 s) leaves idle partitions out of its watermark, so a replay at full speed into
        an idle app makes events late that a starting app reads as one backlog."""
        return self.stack.up(say, before_wait=before_wait)

    def looping_replay(self) -> StackProcess | None:
        """A `replay --loop` an earlier `demo --loop` left running in the stack."""
        return next((p for p in self.stack.running() if p.name == "replay"), None)

    def start_replay(self) -> None:
        if not self.options.sample.is_file():
            msg = (
                f"sample {self.options.sample} not found; pass --sample PATH or run from a tidelake checkout"
            )
            raise ConfigError(msg)
        pace = ["--max-speed"] if self.options.speed is None else ["--speed", str(self.options.speed)]
        # --resume: after what the topic holds of the sample, so a demo run again (or a loop
        # restarted) never sends an event twice
        args = ["replay", str(self.options.sample), *pace, "--resume", "--json"]
        if self.options.loop:  # it outlives the demo, in the stack, until `tidelake down`
            self.stack.start_process("replay", [*args, "--loop"], restart=False)
        else:
            self.supervisor.env.update(self.stack.env())
            self.supervisor.start("replay", *args)

    def sample_lines(self) -> int:
        """Lines in the sample: one pass of the replay (parsed or rejected, each line counts once)."""
        with self.options.sample.open("rb") as sample:
            return sum(1 for _ in sample)

    @staticmethod
    def raw_rows(status: PipelineStatus) -> int:
        return next((d.rows for d in status.datasets if d.name == "clickstream_events"), 0)

    def replay_summary(self) -> dict | None:
        """The replay's --json line once it has finished; None while it runs."""
        replay = next(c for c in self.supervisor.children if c.name == "replay")
        if replay.alive:
            return None
        if replay.process.returncode != 0:
            msg = f"the replay failed (exit {replay.process.returncode}):\n{replay.log_tail()}"
            raise TidelakeError(msg)
        for line in reversed(replay.log_path.read_text().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        msg = f"the replay printed no summary; see {replay.log_path}"
        raise TidelakeError(msg)

    def watch(self, until: Callable[[PipelineStatus], bool], timeout_s: float,
              on_status: Callable[[PipelineStatus], None]) -> PipelineStatus:  # fmt: skip
        """Poll the pipeline every second until `until(status)` or the timeout; the stack's processes
        (and a looping replay) must live. On the timeout, says which process is stuck and why."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.stack.check_alive()
            if self.options.loop:
                self._check_loop_alive()
            status = collect_status(self.settings)
            on_status(status)
            if until(status):
                return status
            if time.monotonic() > deadline:
                raise TidelakeError(self.stuck_report(status, timeout_s))
            time.sleep(1.0)

    def _check_loop_alive(self) -> None:
        replay = next((p for p in self.stack.started_now if p.name == "replay"), None)
        if replay is not None and not replay.alive:
            msg = f"the looping replay has exited; its last lines ({replay.log}):\n{replay.log_tail()}"
            raise TidelakeError(msg)

    def findings(self, status: PipelineStatus) -> list[tuple[StackProcess, Finding]]:
        """Each stream app's and delivery stream's finding (see `tidelake.diagnosis`)."""
        from sinks.config import load_shipped

        board = {(p.kind, p.pid): p for p in status.processes}
        lags = {g.group: g for g in status.groups}
        groups = {}
        for process in self.stack.pipeline():
            if process.kind == "stream":
                groups[process.name] = stream_app_group(process.args[2])
            elif process.kind == "sink":
                groups[process.name] = load_shipped(process.args[2]).consumer_group
        try:
            # only the delivery streams join their groups; a stream app assigns itself every partition
            sink_groups = [g for name, g in groups.items() if name.startswith("sink-")]
            assigned = group_assignments(self.settings.kafka.bootstrap_servers, sink_groups)
        except TidelakeError:
            assigned = {}
        out = []
        for process in self.stack.pipeline():
            if process.name not in groups:
                continue
            entry = board.get((process.kind, process.pid))
            group = groups[process.name]
            out.append((process, diagnose(
                process.kind, process.args[2], alive=process.alive,
                metrics=entry.metrics if entry is not None else None,
                group=lags.get(group), assigned=assigned.get(group) if process.kind == "sink" else None,
            )))  # fmt: skip
        return out

    def stuck_report(self, status: PipelineStatus, timeout_s: float) -> str:
        """What the demo says when the pipeline does not settle: a line per process, then the last
        log lines of each one that is not done."""
        findings = self.findings(status)
        lines = [f"the pipeline did not settle within {timeout_s:.0f} s:"]
        lines += [f"  {finding.line()}" for _, finding in findings]
        for process, finding in findings:
            if not finding.settled:
                lines.append(f"--- last lines of {process.name} ({process.log}):")
                lines.append(process.log_tail(8))
        lines.append(f"logs of every process are in {self.stack.log_dir}")
        return "\n".join(lines)

    @staticmethod
    def consumer_groups() -> set[str]:
        """The consumer groups of this demo's stream apps and delivery streams (a broker may hold
        others, a test's or an old run's, whose lag is not the demo's business)."""
        from sinks.config import load_shipped

        return {stream_app_group(app) for app in STREAM_APPS} | {
            load_shipped(stream).consumer_group for stream in DELIVERY_STREAMS
        }

    def drained(self, expected_rows: int) -> Callable[[PipelineStatus], bool]:
        """Done when, for `settle_s` in a row: every consumer group has caught up (`caught_up`), every stream app
        of this demo has closed all its windows, every delivery stream has flushed its buffers, and
        the lake holds every raw event."""
        ours = {p.pid for p in self.stack.pipeline()}
        groups = self.consumer_groups()
        since: list[float] = []

        def check(status: PipelineStatus) -> bool:
            mine = [p for p in status.processes if p.pid in ours]
            streams = [p for p in mine if p.kind == "stream"]
            sinks = [p for p in mine if p.kind == "sink"]
            raw_rows = self.raw_rows(status)
            quiet = (
                status.broker_up
                and len(streams) == len(STREAM_APPS)
                and all(_stream_settled(p.metrics) for p in streams)
                and len(sinks) == len(DELIVERY_STREAMS)
                and all(p.metrics.get("buffered") == 0 for p in sinks)
                and raw_rows >= expected_rows
                and all(g.caught_up for g in status.groups if g.group in groups)
            )
            if not quiet:
                since.clear()
                return False
            since.append(time.monotonic())
            return since[-1] - since[0] >= self.options.settle_s

        return check

    def answers(self) -> list[Answer]:
        """Each demo query's first rows; a dataset the pipeline has not written (no late event
        arrived, say) gives no rows and the reason instead of an error."""
        from queries import named
        from queries.engine import Engine, Limits

        catalog = named.load_all()
        out = []
        q = self.settings.query
        limits = Limits(
            q.timeout_s, q.memory_limit, q.threads, q.max_result_rows, q.max_result_bytes, q.max_spill
        )
        with Engine(self.settings.lake.root, limits) as engine:
            for name, params in DEMO_QUERIES:
                query = catalog[name]
                try:
                    named.check_inputs(query, engine)
                except TableNotFound as missing:
                    out.append(Answer(name, query.question, [], [], note=str(missing)))
                    continue
                result = engine.run(query.sql, query.bind(params))
                rows = [tuple(r.values()) for r in result.table.slice(0, 10).to_pylist()]
                out.append(
                    Answer(name, query.question, result.table.column_names, rows, result.bytes_scanned)
                )
        return out

    def stop_started(self) -> DownReport:
        """Stop what this run started (the replay, processes, the broker), leaving what it reused."""
        self.supervisor.stop_all()
        return self.stack.stop_started()

    def stop(self) -> DownReport:
        """`tidelake down`: stop the replay and every process of the stack, then the broker if the
        stack started it."""
        self.supervisor.stop_all()
        return self.stack.down()


def _stream_settled(metrics: dict[str, Any]) -> bool:
    """A stream app has closed its windows and Kafka has every row it produced. A paused app (in an
    outage retry) may show no open window and no lag while a crash's rows still wait to be sent."""
    return (
        metrics.get("windows_open") == 0
        and metrics.get("rows_pending") == 0
        and metrics.get("state") == RUNNING
    )
