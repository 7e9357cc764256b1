"""The Flink runtime of `tidelake stream run --runtime flink`: the app compiled to Flink SQL
(`stream_apps.flink_sql.compile_flink_sql`) and run by Apache Flink, the engine of Amazon Managed
Service for Apache Flink, on PyFlink's local mini-cluster or submitted to a Flink cluster.

PyFlink lives in a venv of its own (its pins conflict with tidelake's; tidelake/flink_install.py),
so the job runs in a subprocess: the Flink venv's python executes stream_apps/flink_job.py by path
with a job file `<state_dir>/<app>/flink-job.json` (the statements, and `job_settings`), and reports
the job's id and state changes as JSON lines. The runner's stderr goes to
`<state_dir>/<app>/flink.log` and the JVM's own log (Flink's, INFO) beside it
(`flink-*-python-*.log`, `runner_env`).

Exactly once, Flink's way: the source reads in group `tidelake-flink-<app>` and commits its offsets
there when a checkpoint completes (that is what `tidelake status` shows as the app's lag, and what
`progress()` counts as events in); the sink writes in Kafka transactions committed when a
checkpoint completes, so readers with isolation_level=read_committed see each final row once.
Checkpoints go to `<state_dir>/<app>/flink-checkpoints/<job id>/chk-<n>` and are retained on
cancellation; a restarted app resumes from the newest one (`latest_checkpoint`,
'execution.state-recovery.path'), after a clean stop and after kill -9 alike. A remote cluster
keeps its own checkpoints (its 'execution.checkpointing.dir'): the runner submits the job and
returns, and the cluster runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError as KafkaPythonError

from core.admin import admin_client, delete_consumer_groups, describe_topics
from core.errors import BrokerUnavailable, ConfigError, TidelakeError
from core.status_board import RUNNING, STOPPED
from stream_apps.spec import AppSpec
from stream_apps.worker import Progress, StreamWorker, WorkerOptions

log = logging.getLogger(__name__)

#: The job runner, executed by path by the Flink venv's python (it imports only PyFlink).
JOB_SCRIPT = Path(__file__).with_name("flink_job.py")
CHECKPOINTS = "flink-checkpoints"
#: Retained checkpoints per job (Flink's default is 1; two leave one to fall back to).
RETAINED_CHECKPOINTS = 2
#: How long a cancelled job may take to stop before the runner is killed.
STOP_TIMEOUT_S = 60.0
LAG_EVERY_S = 2.0


def flink_group(app: str) -> str:
    """The consumer group the Flink source reads in (the compiled script's `source_group`)."""
    return f"tidelake-flink-{app}"


@dataclass(frozen=True)
class FlinkOptions:
    """What the Flink runtime needs beyond `WorkerOptions`: the install and where the job runs."""

    python: Path  # the Flink venv's python (tidelake.flink_install)
    connector_jar: Path  # flink-sql-connector-kafka
    #: The job's parallelism; None: one per source partition (see `job_settings`).
    parallelism: int | None = None
    #: A Flink cluster's REST endpoint (http://HOST:8081); None: PyFlink's local mini-cluster.
    rest_url: str | None = None


@dataclass
class FlinkProgress(Progress):
    """`Progress` of a Flink-run app: events in are the source offsets the job has checkpointed
    (committed to its group); the window counters stay 0 (they live inside Flink)."""

    runtime: str = "flink"
    job_id: str = ""
    #: Flink's JobStatus (CREATED, RUNNING, RESTARTING, FAILED, CANCELED, ...), or SUBMITTING.
    job_state: str = "SUBMITTING"
    #: Records of the source not yet checkpointed by the job (its group's lag).
    lag: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint_root(state_dir: Path, app: str) -> Path:
    return state_dir / app / CHECKPOINTS


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root` (`<job id>/chk-<n>/_metadata`, any job), by the
    time its metadata was written, then by n; None when there is none. Flink writes `_metadata`
    last, so a checkpoint a crash cut short has none and is never chosen."""
    found = []
    for metadata in root.glob("*/chk-*/_metadata"):
        number = metadata.parent.name.removeprefix("chk-")
        if number.isdigit():
            found.append((metadata.stat().st_mtime_ns, int(number), metadata.parent))
    return max(found)[2] if found else None


def rest_address(url: str) -> tuple[str, int]:
    """(host, port) of a Flink REST URL such as http://jobmanager:8081; ConfigError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"--flink-rest {url!r}: expected http://HOST:PORT of a Flink JobManager's REST endpoint"
        raise ConfigError(msg)
    return parts.hostname, parts.port or 8081


def job_settings(options: FlinkOptions, state_dir: Path, app: str, partitions: int) -> dict[str, str]:
    """The Flink configuration the runner puts over the script's SET lines.

    - 'pipeline.jars': the Kafka connector and zstd-jni beside it (`pipeline_jars`; shipped with the
      job to a remote cluster as well);
    - 'parallelism.default': `options.parallelism`, else one subtask per source partition. Flink's
      Kafka source watermarks per partition, but a reader holding several partitions counts a
      partition only from its first record on: with a backlog, a partition read later than another
      has its events taken for late. One partition per subtask keeps tidelake's rule (the watermark
      is the minimum over every partition);
    - local: checkpoints in `checkpoint_root`, kept on cancellation, and the restore path of the
      newest one ('execution.state-recovery.path', Flink 2.x's name for execution.savepoint.path);
    - remote: 'execution.target' remote at the REST address; checkpoints are the cluster's."""
    settings = {
        "pipeline.jars": pipeline_jars(options.connector_jar),
        "parallelism.default": str(options.parallelism or partitions),
    }
    if options.rest_url is not None:
        host, port = rest_address(options.rest_url)
        return settings | {"execution.target": "remote", "rest.address": host, "rest.port": str(port)}
    root = checkpoint_root(state_dir, app)
    settings |= {
        "execution.checkpointing.dir": root.resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": str(RETAINED_CHECKPOINTS),
    }
    restore = latest_checkpoint(root)
    if restore is not None:
        settings["execution.state-recovery.path"] = restore.resolve().as_uri()
    return settings


def job_file(statements: tuple[str, ...] | list[str], app: str, settings: dict[str, str],
             explain: bool = False) -> dict[str, Any]:  # fmt: skip
    """The runner's input (stream_apps/flink_job.py's docstring)."""
    return {
        "scripts": [{"app": app, "statements": list(statements)}],
        "settings": settings,
        "explain": explain,
    }


def runner_env(folder: Path) -> dict[str, str]:
    """The runner's environment: the JVM's own log (log4j, INFO) goes to `folder`
    (`flink-*-python-*.log`, PyFlink's FLINK_LOG_DIR) instead of the Flink venv's pyflink/log, which
    every app and run would share; the runner's stderr goes to `folder/flink.log`."""
    return {**os.environ, "FLINK_LOG_DIR": str(folder)}


def pipeline_jars(connector_jar: Path) -> str:
    """Flink's 'pipeline.jars' (URIs separated by ';'): the Kafka connector, then every other jar
    `tidelake flink fetch` put in its folder (zstd-jni: the connector's shaded Kafka client reads zstd
    batches with it, and Flink's own lib/ lacks it)."""
    beside = sorted(j for j in connector_jar.parent.glob("*.jar") if j.name != connector_jar.name)
    return ";".join(jar.resolve().as_uri() for jar in (connector_jar, *beside))


def explain_job(scripts: dict[str, tuple[str, ...]], connector_jar: Path) -> dict[str, Any]:
    """The runner's input to EXPLAIN each app's INSERT (`{app: statements}`) in one JVM."""
    return {
        "scripts": [{"app": app, "statements": list(statements)} for app, statements in scripts.items()],
        "settings": {"pipeline.jars": pipeline_jars(connector_jar)},
        "explain": True,
    }


def runner_command(python: Path, job_path: Path) -> list[str]:
    return [str(python), str(JOB_SCRIPT), str(job_path)]


class FlinkWorker(StreamWorker):
    """One Flink job of one app. Same interface as `StreamWorker` (`run()`, `stop()`, `progress()`,
    `on_progress`), so the CLI chooses the runtime with one flag."""

    def __init__(self, spec: AppSpec, options: WorkerOptions, flink: FlinkOptions,
                 on_progress: Any = None) -> None:  # fmt: skip
        super().__init__(spec, options, on_progress=on_progress)
        self.flink = flink
        self.job_id = ""
        self.job_state = "SUBMITTING"
        self.error = ""
        #: Seconds between two readings of the source group's offsets (progress, lag).
        self.lag_every_s = LAG_EVERY_S
        #: time.monotonic() when the job reached RUNNING (benchmarks time from there too).
        self.running_at: float | None = None
        self._read = 0
        self._lag = 0
        self._final_state = RUNNING

    def progress(self) -> FlinkProgress:
        """`state` is what `tidelake status` shows: running while the job runs, else Flink's job
        state in lower case (created, restarting, failing, ...), stopped once the run has ended."""
        state = self._final_state
        if state != STOPPED and self.job_state != "RUNNING":
            state = self.job_state.lower()
        return FlinkProgress(
            self.spec.name, self._read, 0, 0, 0, 0, 0, 0, 0, "-", round(time.monotonic() - self.started, 3),
            state=state, job_id=self.job_id, job_state=self.job_state, lag=self._lag,
        )  # fmt: skip

    def _group_offsets(self, partitions: list[int]) -> tuple[int, int]:
        """(records the job has checkpointed, records left) on the source, from its group."""
        group = flink_group(self.spec.name)
        tps = [KafkaTopicPartition(self.spec.source, p) for p in partitions]
        with admin_client(self.options.bootstrap_servers) as client:
            committed = client.list_group_offsets({group: tps}).get(group, {})
        ends = describe_topics(self.options.bootstrap_servers, [self.spec.source])
        end = sum(ends[0].end_offsets) if ends else 0
        read = sum(m.offset for m in committed.values() if m.offset is not None and m.offset >= 0)
        return read, max(0, end - read)

    async def _poll_lag(self, partitions: list[int]) -> None:
        with contextlib.suppress(KafkaPythonError, BrokerUnavailable, OSError):
            self._read, self._lag = await asyncio.to_thread(self._group_offsets, partitions)

    def _reset(self) -> None:
        shutil.rmtree(checkpoint_root(self.options.state_dir, self.spec.name), ignore_errors=True)
        delete_consumer_groups(self.options.bootstrap_servers, [flink_group(self.spec.name)])

    async def run(self) -> FlinkProgress:
        """Run the job until `stop()` (local), or until the cluster has accepted it (remote)."""
        from stream_apps.flink_sql import compile_flink_sql  # refusals (FlinkUnsupported) come first

        spec, options = self.spec, self.options
        script = compile_flink_sql(
            spec, bootstrap_servers=options.bootstrap_servers,
            checkpoint_interval_s=options.checkpoint_interval_s,
        )  # fmt: skip
        partitions = self._prepare_topics()
        if options.reset and self.flink.rest_url is None:
            await asyncio.to_thread(self._reset)
        folder = options.state_dir / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        settings = job_settings(self.flink, options.state_dir, spec.name, len(partitions))
        job_path = folder / "flink-job.json"
        job_path.write_text(json.dumps(job_file(script.statements, spec.name, settings), indent=1))
        if "execution.state-recovery.path" in settings:
            log.info("%s: resuming from %s", spec.name, settings["execution.state-recovery.path"])
        with open(folder / "flink.log", "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *runner_command(self.flink.python, job_path), stdout=asyncio.subprocess.PIPE,
                stderr=log_file, start_new_session=True,  # Ctrl-C reaches us; we cancel the job
                env=runner_env(folder),
            )  # fmt: skip
            try:
                await self._follow(process, partitions)
            finally:
                if process.returncode is None:
                    await _end(process)
        await self._poll_lag(partitions)
        if process.returncode != 0 and not self._stop.is_set():
            msg = (
                f"stream app {spec.name} (flink runtime): the job {self.job_id or '(not submitted)'} "
                f"ended {self.job_state}: {self.error or 'see the logs in ' + str(folder)}"
            )
            raise TidelakeError(msg)
        self._final_state = STOPPED
        return self.progress()

    async def _follow(self, process: asyncio.subprocess.Process, partitions: list[int]) -> None:
        """Read the runner's events until it exits; on `stop()`, SIGTERM it (the job is cancelled)."""
        assert process.stdout is not None  # PIPE
        stopping = asyncio.ensure_future(self._stop.wait())
        last_lag = 0.0
        try:
            while True:
                reading = asyncio.ensure_future(process.stdout.readline())
                done, _ = await asyncio.wait({reading, stopping}, timeout=self.lag_every_s,
                                             return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if stopping in done and process.returncode is None:
                    reading.cancel()
                    await _end(process)
                    for rest in (await process.stdout.read()).splitlines():  # how the job ended
                        self._note(rest)
                    return
                if reading in done:
                    line = reading.result()
                    if not line:
                        await process.wait()
                        return
                    self._note(line)
                else:
                    reading.cancel()
                now = time.monotonic()
                if now - last_lag >= self.lag_every_s:
                    await self._poll_lag(partitions)
                    last_lag = now
                if self.on_progress is not None:
                    self.on_progress(self.progress())
        finally:
            stopping.cancel()

    def _note(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            log.info("flink runner: %s", line.decode(errors="replace").rstrip())
            return
        self.job_id = event.get("job_id", self.job_id)
        kind = event.get("event")
        if kind == "state":
            self.job_state = str(event["state"])
            if self.job_state == "RUNNING" and self.running_at is None:
                self.running_at = time.monotonic()
        elif kind == "submitted":
            self.job_state = "SUBMITTED" if self.flink.rest_url else "CREATED"
        elif kind == "cancelled":
            self.job_state = "CANCELED"
        elif kind == "failed":
            self.job_state = "FAILED"
            statement = event.get("statement")
            self.error = str(event.get("error", "")) + (f"\nin: {statement}" if statement else "")


async def _end(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the runner (it cancels the job and exits), SIGKILL it after STOP_TIMEOUT_S."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
