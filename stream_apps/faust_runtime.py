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

Per-event cost. Faust hands every event to the stream one at a time, so what costs is its per-event
machinery. The app keeps Faust's conductor, flow control, channels, streams and agent, with one
change made through Faust's own extension point, the transport set on the app
(`direct_delivery_transport`): Faust's aiokafka transport whose consumer awaits the conductor for
each message instead of racing four tasks per message (`wait_first`); 2.6x the events per
CPU-second (figures in docs/stream_apps.md, bench/stream.py). The agent's own side (micro-batches
of what is queued, a raw schema) is in stream_apps/faust_windows.py. Faust's `cython_optimizations`
setting was measured too and left off: no difference within the noise (8,106 against 8,006 events
per CPU-second, two alternated runs each).

Run programmatically with `faust.contrib.asgi.faust_app_running` on the caller's loop: no argv
parsing (`app.main()`), no signal handlers or logging set up by Faust (`faust.Worker`); Faust's
logging is raised to ERROR and goes to stderr.
"""

from __future__ import annotations

import asyncio
import functools
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

    app = faust.App(
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
    # Set before anything reaches `app.topics` (the conductor takes its consumer from here).
    app.transport = direct_delivery_transport()(app.conf.broker_consumer, app)
    return app


@functools.cache
def direct_delivery_transport() -> type:
    """Faust's aiokafka transport (`faust.transport.drivers.aiokafka.Transport`) with one change:
    its consumer (`DirectDeliveryConsumer`) awaits the conductor's callback for each fetched
    message instead of racing it against the flow's suspension. Made once, on first use, because
    defining it imports Faust."""
    from faust.transport.consumer import CONSUMER_FETCHING
    from faust.transport.drivers import aiokafka as driver

    class DirectDeliveryConsumer(driver.Consumer):
        """Faust's aiokafka consumer. Its fetch loop is Faust's `Consumer._drain_messages` (same
        read offsets, gaps, commits, yields to the loop every 100 messages) except for the
        delivery: Faust awaits `wait_first(callback(message), suspend_flow.wait())` for every
        message, which makes four tasks and an `asyncio.wait` per message, half of the runtime's
        per-event cost in the profile (bench/stream.py). Here, while the flow runs, the message
        is delivered by awaiting the callback (the conductor's `on_message`: flow control, decode,
        the channel's queue) directly; while the flow is suspended (a rebalance) it goes through
        `wait_first` as in Faust. A suspension that begins during a delivery waits for the
        conductor's flow control instead of dropping the message; the stream then skips it as
        from an old generation, as it skips any message fetched before a rebalance."""

        async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in Faust
            callback = self.callback
            getmany = self.getmany
            consumer_should_stop = self._stopped.is_set
            fetcher_should_stop = fetcher._stopped.is_set
            get_read_offset = self._read_offset.__getitem__
            set_read_offset = self._read_offset.__setitem__
            suspended = self.suspend_flow.is_set
            set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
            commit_every = self._commit_every
            acks_enabled_for = self.app.topics.acks_enabled_for
            yield_every, since_yield, sleep = 100, 0, asyncio.sleep
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    set_flag(CONSUMER_FETCHING)
                    ait = getmany(timeout=1.0)
                    await self.sleep(0)
                    if self.should_stop:
                        continue
                    async for tp, message in ait:
                        since_yield += 1
                        if since_yield > yield_every:
                            await sleep(0)
                            since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if suspended():
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                await callback(message)
                            set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    return
                raise
            finally:
                unset_flag(CONSUMER_FETCHING)

    class DirectDeliveryTransport(driver.Transport):
        Consumer = DirectDeliveryConsumer

    return DirectDeliveryTransport


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
