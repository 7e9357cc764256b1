"""`tidelake demo`: the whole pipeline on a real clickstream, started, watched, answered, stopped.

    broker (local, unless one is configured) -> topics -> stream apps + delivery streams + query
    server (child processes) -> replay of the shipped sample -> drain (windows closed, files
    flushed) -> the answers of the named queries -> stop everything it started

Every child is a `tidelake ...` command, exactly what docker-compose.yml runs in containers.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.admin import (
    GroupLag,
    PartitionLag,
    admin_client,
    create_topics,
    delete_consumer_groups,
    describe_topics,
)
from core.errors import ConfigError, TableNotFound, TidelakeError
from core.settings import Settings
from core.status_board import RUNNING
from core.topics import CLICKSTREAM_EVENTS, TopicSpec, analytics_topic, default_topics, stream_app_group
from tidelake.broker import LocalBroker
from tidelake.status import PipelineStatus, collect_status, lake_datasets
from tidelake.supervisor import Supervisor

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shipped sample: 10,000 lines of a real shop's access log spanning 40 min 43 s.
DEFAULT_SAMPLE = REPO_ROOT / "data" / "zanbil-access-10k" / "access-10k.log"
#: Original gaps / 50: the sample's 2,443 s of event time replay in about 49 s.
DEFAULT_SPEED = 50.0
STREAM_APPS = (
    "page-views-1m",
    "active-visitors-5m",
    "visitor-sessions",
    "top-pages-5m",
    "error-rate-1m",
    "page-view-anomalies",
)
DELIVERY_STREAMS = ("clickstream-events", "analytics", "late-events", "dead-letters")
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
    keep_running: bool = False
    fresh: bool = False
    serve_port: int = 8080
    partitions: int = 4
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


@dataclass
class DemoReport:
    replay: dict = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    status: PipelineStatus | None = None
    console_url: str = ""
    seconds_to_answers: float = 0.0
    reused: bool = False


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


def demo_topics(partitions: int) -> list[TopicSpec]:
    return [
        *default_topics(partitions),
        *(TopicSpec(analytics_topic(app), partitions) for app in STREAM_APPS),
    ]


class Demo:
    """One run of the demo. `run` returns the report; `stop` leaves nothing of it running."""

    def __init__(self, settings: Settings, options: DemoOptions, *, broker_configured: bool) -> None:
        self.settings = settings
        self.options = options
        self.broker_configured = broker_configured
        self.work_dir = settings.runtime.state_dir / "demo"
        self.supervisor = Supervisor(self.work_dir / "logs", env=self._child_env())
        self.started_broker: LocalBroker | None = None
        self.began = time.monotonic()

    def _child_env(self) -> dict[str, str]:
        return {
            "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap_servers,
            "TIDELAKE_LAKE__ROOT": str(self.settings.lake.root.resolve()),
            "TIDELAKE_RUNTIME__STATE_DIR": str(self.settings.runtime.state_dir),
            # the apps' state belongs to this demo's topics, next to its logs
            "TIDELAKE_STREAM__STATE_DIR": str(self.settings.runtime.state_dir / "stream"),
            "COLUMNS": "120",
        }

    # ------------------------------------------------------------------ steps
    def start_broker(self) -> str:
        if self.broker_configured:
            return f"using the Kafka at {self.settings.kafka.bootstrap_servers}"
        broker = LocalBroker(self.settings.broker)
        already = broker.running_state()
        state = already or broker.start()
        if already is None:
            self.started_broker = broker
        self.settings.kafka.bootstrap_servers = state.bootstrap_servers
        self.supervisor.env.update(self._child_env())
        verb = "reusing" if already else "started"
        return f"{verb} local Kafka {state.kafka_version} at {state.bootstrap_servers} (pid {state.pid})"

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
            doomed = [t.name for t in demo_topics(self.options.partitions) if t.name in existing]
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

    def start_pipeline(self) -> None:
        create_topics(self.settings.kafka.bootstrap_servers, demo_topics(self.options.partitions))
        for app in STREAM_APPS:
            self.supervisor.start(f"stream-{app}", "stream", "run", app)
        for stream in DELIVERY_STREAMS:
            self.supervisor.start(f"sink-{stream}", "sink", "run", stream)
        self.supervisor.start("serve", "serve", "--port", str(self.options.serve_port))

    def start_replay(self) -> None:
        if not self.options.sample.is_file():
            msg = (
                f"sample {self.options.sample} not found; pass --sample PATH or run from a tidelake checkout"
            )
            raise ConfigError(msg)
        pace = ["--max-speed"] if self.options.speed is None else ["--speed", str(self.options.speed)]
        loop = ["--loop"] if self.options.loop else []
        # --resume: after what the topic holds of the sample, so a demo run again (or a loop
        # restarted) never sends an event twice
        self.supervisor.start(
            "replay", "replay", str(self.options.sample), *pace, *loop, "--resume", "--json"
        )

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
        """Poll the pipeline every second until `until(status)` or the timeout; children must live."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.supervisor.check_running(except_names={"replay"})
            status = collect_status(self.settings)
            on_status(status)
            if until(status):
                return status
            if time.monotonic() > deadline:
                msg = f"the pipeline did not settle within {timeout_s:.0f} s; logs of every process are in {self.supervisor.log_dir}"
                raise TidelakeError(msg)
            time.sleep(1.0)

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
        ours = {child.process.pid for child in self.supervisor.children}
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
                and self.caught_up([g for g in status.groups if g.group in groups])
            )
            if not quiet:
                since.clear()
                return False
            since.append(time.monotonic())
            return since[-1] - since[0] >= self.options.settle_s

        return check

    def caught_up(self, groups: list[GroupLag]) -> bool:
        """Every group has read every record. A transactional producer's commit marker takes an
        offset that no consumer gets as a record (the stream apps write their rows in transactions),
        so a group may lag by markers alone: then a read-committed look past its offsets finds
        nothing more."""
        behind = [p for g in groups for p in g.partitions if p.lag > 0]
        return not behind or not self.records_left(behind)

    def records_left(self, partitions: list[PartitionLag], timeout_s: float = 5.0) -> bool:
        """Whether a committed record lies between a partition's committed offset and its end."""
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.settings.kafka.bootstrap_servers, group_id=None,
                enable_auto_commit=False, isolation_level="read_committed", client_id="tidelake-demo",
            )  # fmt: skip
        except KafkaError:
            return True  # cannot tell: not drained yet
        ends = {TopicPartition(p.topic, p.partition): p.end_offset for p in partitions}
        try:
            consumer.assign(list(ends))
            for p in partitions:
                consumer.seek(TopicPartition(p.topic, p.partition), p.committed or 0)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if any(consumer.poll(timeout_ms=100).values()):
                    return True
                if all(consumer.position(tp) >= end for tp, end in ends.items()):
                    return False
            return True
        except KafkaError:
            return True
        finally:
            consumer.close()

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

    def stop(self) -> list[str]:
        """Stop every child (newest first), then the broker if this demo started it."""
        killed = self.supervisor.stop_all()
        if self.started_broker is not None:
            self.started_broker.stop()
            self.started_broker = None
        return killed


def _stream_settled(metrics: dict[str, Any]) -> bool:
    """A stream app has closed its windows and Kafka has every row it produced. A paused app (in an
    outage retry) may show no open window and no lag while a crash's rows still wait to be sent."""
    return (
        metrics.get("windows_open") == 0
        and metrics.get("rows_pending") == 0
        and metrics.get("state") == RUNNING
    )
