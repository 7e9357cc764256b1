"""Stream apps on Apache Flink: the tumbling per-page count over >= 1,000,000 events in a 4-partition
topic (bench/stream.py's topic shape and events), in one run on the same topic:

- ours: tidelake's engine on aiokafka (bench/stream.py's `_ours`: one `StreamWorker`, exactly once,
  a Kafka transaction per 1 s checkpoint);
- Flink: the same app compiled to Flink SQL (`compile_flink_sql`) on PyFlink's local mini-cluster
  (`FlinkWorker`, `--runtime flink`), with parallelism 1 and then 2, exactly once (Kafka
  transactions committed on each checkpoint, every 1 s).

Every run is timed from the start of the app, JVM start-up included for Flink (as Quix's and ours
include theirs), until every input event is through the window: for Flink, until its source group
has committed the topic's end offsets, which it does when a checkpoint completes (so a run takes up
to one checkpoint interval longer than the work). The time from the job's RUNNING state is printed
too. Flink drops as late the events of a partition its reader starts after another (parallelism
below the partition count; stream_apps/flink_runtime.py `job_settings`): those are still read,
and counted in the time.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench.harness import BenchContext, Comparison, console
from bench.stream import EVENTS, PARTITIONS, _ours, _produce
from core.admin import create_topics
from core.topics import TopicSpec
from stream_apps.flink_runtime import FlinkOptions, FlinkWorker
from stream_apps.spec import spec_from_mapping
from stream_apps.worker import WorkerOptions
from tidelake.flink_install import installed


def _flink(context: BenchContext, topic: str, count: int, parallelism: int) -> tuple[float, float]:
    """(events/s from app start, events/s from the job's RUNNING state) of one Flink run."""
    install = installed()
    name = f"bench-flink-p{parallelism}-{uuid.uuid4().hex[:6]}"
    spec = spec_from_mapping(
        {
            "name": name,
            "source": topic,
            "key_field": "page",
            "window": "tumbling:60s",
            "aggregates": ["count"],
            "sink_topic": f"{topic}.flink-p{parallelism}",
        }
    )
    options = WorkerOptions(context.bootstrap_servers, context.scratch / "state", checkpoint_interval_s=1.0)
    worker = FlinkWorker(
        spec, options, FlinkOptions(install.python, install.connector_jar, parallelism=parallelism)
    )
    worker.lag_every_s = 0.25
    finished: dict[str, float] = {}

    def on_progress(progress) -> None:
        if progress.events_in >= count and "at" not in finished:
            finished["at"] = time.monotonic()  # the clock of worker.running_at
            worker.stop()

    worker.on_progress = on_progress
    started = time.monotonic()
    progress = asyncio.run(worker.run())
    if "at" not in finished:
        msg = f"flink (parallelism {parallelism}) stopped after {progress.events_in:,} of {count:,} events ({progress.job_state})"
        raise RuntimeError(msg)
    elapsed = finished["at"] - started
    running_s = finished["at"] - (worker.running_at or started)
    console.print(
        f"flink, parallelism {parallelism}: {count:,} events in {elapsed:.2f} s from start "
        f"({running_s:.2f} s from the job's RUNNING state)"
    )
    return count / elapsed, count / running_s


def run(context: BenchContext) -> list[Comparison]:
    count = max(10_000, int(EVENTS * context.scale))
    topic = f"bench.flink.{uuid.uuid4().hex[:8]}"
    create_topics(context.bootstrap_servers, [TopicSpec(topic, PARTITIONS)])
    started = time.perf_counter()
    _produce(context.bootstrap_servers, topic, count)
    console.print(f"produced {count:,} events into {topic} ({PARTITIONS} partitions) in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    ours = _ours(context, topic, count)
    flink = {p: _flink(context, topic, count, p) for p in (1, 2)}
    metric = f"tumbling 60 s count per page, {count:,} events, 4 partitions"
    rows = []
    for parallelism, (from_start, from_running) in flink.items():
        rows.append(
            Comparison(
                benchmark=f"flink-p{parallelism}",
                metric=metric,
                unit="events/s",
                ours=ours,
                baseline=from_start,
                baseline_name=f"Flink 2.2.0 mini-cluster, parallelism {parallelism}",
                goal="measured, no goal: how far one tidelake worker goes before a user needs Flink",
                notes=f"ours: aiokafka runtime, one worker; Flink from app start, JVM start-up included "
                f"({from_running:,.0f} events/s from the job's RUNNING state); both exactly once, 1 s checkpoints; "
                "same topic, same run, 2-core machine",
            )
        )
    return rows
