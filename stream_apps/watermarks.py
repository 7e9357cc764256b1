"""The event-time clock of an app's source: how far each partition's events have got, the app's
watermark, and which partitions are idle.

- A partition's watermark is the largest event time (µs) it has delivered minus
  `allowed_lateness`; the app's watermark is the minimum over the partitions that are not idle.
- A partition that has not delivered an event for `idle_timeout` (wall clock, seconds from the
  runner's `now_s`) stops holding the watermark back, unless the runner says it still has records
  to read (`note_waiting`), as Flink's Kafka source marks a split idle only when it has nothing to
  fetch.
- When every partition is idle, the first batch after that gives every partition `idle_timeout` to
  deliver again (`batch_arrived`).

Separate from the window state (stream_apps/window_state.py) as bytewax separates its clock from
its windower: the clock says how far event time has got and knows nothing of windows; the window
state closes what the clock's watermark allows. The engine (stream_apps/engine.py) ties them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Before every event time (µs): a partition that has delivered nothing, windows closed through nothing.
NEVER = -(2**62)


class Watermarks:
    """The clock of the partitions `partitions` of one app's source."""

    _STATE = ("partition_max", "max_seen")

    def __init__(self, partitions: list[int], idle_timeout_us: int, allowed_lateness_us: int,
                 now_s: float) -> None:  # fmt: skip
        self.partitions = list(partitions)
        self.idle_timeout_us = idle_timeout_us
        self.allowed_lateness_us = allowed_lateness_us
        #: The largest event time each partition has delivered, None before its first event.
        self.partition_max: dict[int, int | None] = dict.fromkeys(partitions)
        #: When each partition last delivered, or was last known to have records waiting (wall clock).
        self.last_seen_s: dict[int, float] = dict.fromkeys(partitions, now_s)
        #: The largest event time any partition has delivered.
        self.max_seen = NEVER

    # -- snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The event times delivered so far; wall-clock times are not kept (a restart starts them
        at its own `now_s`)."""
        return {name: getattr(self, name) for name in self._STATE}

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])
        for partition in self.partitions:
            self.partition_max.setdefault(partition, None)

    # -- input -------------------------------------------------------------------------------
    def top(self, partition: int) -> int:
        """The largest event time `partition` has delivered, NEVER before its first event."""
        pmax = self.partition_max.get(partition)
        return NEVER if pmax is None else pmax

    def batch_arrived(self, now_s: float) -> None:
        """A batch of records is about to be applied. If the app was wholly idle (a stack waiting
        for its first replay, a replay restarted), every partition gets `idle_timeout` to deliver
        again before the first one read sets the watermark alone (the others' records are often
        only milliseconds behind)."""
        if self.all_idle(now_s):
            for partition in self.partitions:
                self.last_seen_s[partition] = now_s

    def delivered(self, partition: int, top: int, now_s: float) -> None:
        """`partition` delivered a batch whose events reach `top` (NEVER: none had a time)."""
        if top != NEVER:
            self.partition_max[partition] = top
            if top > self.max_seen:
                self.max_seen = top
        self.last_seen_s[partition] = now_s

    def note_waiting(self, partitions: Iterable[int], now_s: float) -> None:
        """`partitions` have records on the broker that the runner has not read yet (its position is
        behind the partition's end): they are not idle, and keep holding the watermark back until
        they deliver. Without this, after a pause longer than `idle_timeout` (a replay restarted,
        a busy machine) the first partition read again would set the watermark alone and the
        others' backlog would arrive late."""
        for partition in partitions:
            self.last_seen_s[partition] = now_s

    # -- time --------------------------------------------------------------------------------
    def watermark(self, now_s: float) -> int | None:
        """The app's watermark now (µs): NEVER while a live partition has delivered nothing yet, None
        when every partition is idle."""
        idle_s = self.idle_timeout_us / 1_000_000
        live = [p for p in self.partitions if now_s - self.last_seen_s.get(p, now_s) < idle_s]
        if not live:
            return None
        tops = [self.partition_max.get(p) for p in live]
        if any(top is None for top in tops):
            return NEVER
        return min(tops) - self.allowed_lateness_us  # type: ignore[type-var,operator]

    def all_idle(self, now_s: float) -> bool:
        idle_s = self.idle_timeout_us / 1_000_000
        return all(now_s - self.last_seen_s.get(p, now_s) >= idle_s for p in self.partitions)
