"""The Faust runtime of `tidelake stream run --runtime faust`: the same `WindowEngine` in a
`faust.App` of its own, hosted exactly as in a user's app (`FaustWindows`, one code path).

One `faust.App` per spec, with the id `tidelake-stream-<app>` (web server off, data folder under the
app's state folder, static member `tidelake-<app>-worker`): its consumer group is the group the
checkpoints commit their source offsets to (stream_apps/faust_windows.py has the commit order and
why the committed offsets are never ahead of a durable snapshot). So Faust starts each partition at
the snapshot's offsets, `tidelake status` shows the app's lag like any consumer's, and the demo
drains on it as on the aiokafka runtime, whose group has the same name.

Output goes through a separate aiokafka transactional producer, not Faust's producer nor Faust's
`processing_guarantee="exactly_once"`: Faust's transactions follow its own per-partition offset
commits, and sends from a timer (outside any event) bypass them (faust-streaming#177).

State: the engine's snapshot files (stream_apps/checkpoint.py), not a Faust Table. The engine's state
is one object spanning every partition (the watermark is a minimum over partitions, and keys such as
`page` span partitions), while a Faust table is sharded by the source partition of each key; and
Faust's changelog recovery has open bugs (faust-streaming#176, #597) and restores windows that never
close (#193).

Run programmatically with `faust.contrib.asgi.faust_app_running` on the caller's loop: no argv
parsing (`app.main()`), no signal handlers or logging set up by Faust (`faust.Worker`); Faust's
logging is raised to ERROR and goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaError

from core.admin import admin_client
from core.errors import BrokerUnavailable
from core.status_board import STOPPED
from core.topics import stream_app_group
from stream_apps.faust_windows import FaustWindows
from stream_apps.worker import Progress, StreamWorker

log = logging.getLogger(__name__)

#: Loggers of Faust and the libraries under it: their INFO/WARNING chatter stays out of the way.
NOISY_LOGGERS = ("faust", "mode", "aiokafka", "kafka")


def quiet_faust_logging() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def faust_app(spec_name: str, bootstrap_servers: str, data_dir: str, max_batch: int) -> Any:
    """The runtime's own `faust.App` for one app (module docstring)."""
    import faust  # imported here: importing Faust is slow and only this runtime needs it

    return faust.App(
        stream_app_group(spec_name),  # Faust's group is the checkpoints' group
        broker=f"kafka://{bootstrap_servers}",
        datadir=data_dir,
        web_enabled=False,
        value_serializer="raw",
        key_serializer="raw",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=4 * 1024 * 1024,
        stream_buffer_maxsize=max_batch,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        producer_acks=-1,
        # Static membership: one worker per app, so a restart after kill -9 takes the dead
        # member's place at once instead of waiting for its session (60 s by default) to expire.
        consumer_group_instance_id=instance_id(spec_name),
    )


def instance_id(spec_name: str) -> str:
    """The runtime's static member id (Kafka's group.instance.id) in `tidelake-stream-<app>`."""
    return f"tidelake-{spec_name}-worker"


def leave_group(bootstrap_servers: str, spec_name: str) -> None:
    """Remove the runtime's static member from its group after a clean stop. A static member does
    not leave when its consumer closes (KIP-345), so the group would stay non-empty, and could not
    be deleted (`tidelake demo --fresh`), until its session expires. Best effort: logged if it fails."""
    from kafka.admin import MemberToRemove
    from kafka.errors import KafkaError as KafkaPythonError

    group = stream_app_group(spec_name)
    try:
        with admin_client(bootstrap_servers) as client:
            client.remove_group_members(group, [MemberToRemove(group_instance_id=instance_id(spec_name))])
    except (KafkaPythonError, BrokerUnavailable) as exc:
        log.warning("stream app %s: could not remove its static member from %s: %s", spec_name, group, exc)


class FaustWorker(StreamWorker):
    """One worker of one app hosted in a Faust app; owns every partition of the source topic.

    Same interface as `StreamWorker` (`run()`, `stop()`, `progress()`, `on_progress`), so the CLI and
    benchmarks choose the runtime with one flag."""

    async def _run(self, partitions: list[int]) -> Progress:
        from faust.contrib.asgi import faust_app_running

        quiet_faust_logging()
        spec, options = self.spec, self.options
        app = faust_app(
            spec.name, options.bootstrap_servers, str(self.state.path / "faust"), options.max_batch
        )
        host = FaustWindows.for_worker(app, self, partitions)
        async with faust_app_running(app, stop_timeout=60.0):
            waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(host.halted.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        await host.close()  # the app's shutdown has called it; a no-op then
        if host.failure is not None:
            exc = host.failure
            if isinstance(exc, BrokerUnavailable):
                raise exc
            if isinstance(exc, KafkaError):
                msg = f"stream app {spec.name} (faust runtime): Kafka failed: {exc.__class__.__name__}: {exc}"
                raise BrokerUnavailable(msg) from exc
            raise exc
        await asyncio.to_thread(leave_group, options.bootstrap_servers, spec.name)
        self._state = STOPPED
        return self.progress()
