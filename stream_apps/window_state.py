"""Window state: the open windows of one app, their aggregates' accumulators, and closing them once
the watermark passes their end.

- Tumbling and hopping windows (`fixed`, by (key, start)) are updated as events arrive
  (`add_fixed`).
- Sessions, stagger and sliding windows depend on the order of a key's events, so their events
  wait (`hold`, in `pending`) until the watermark passes them and are then applied in event-time
  order: results do not depend on how partitions interleave.
- A window closes once the watermark reaches its end (`close_through`) and is handed to `emit`
  once, as final. `closed_through` is how far windows have been closed: an event before it, or all
  of whose windows ended by it, is late.

Separate from the clock (stream_apps/watermarks.py) as bytewax separates its windower from its
clock: this module never reads a wall clock or a partition; it is told how far to close. And
separate from output formatting (stream_apps/outbox.py): a closed window leaves as (key, start,
end, accumulators) through `emit`, which formats and writes it. Times are µs since the epoch.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Protocol

from stream_apps.outbox import Counters
from stream_apps.spec import AppSpec
from stream_apps.watermarks import NEVER
from stream_apps.windows import fixed_starts, session_continues, stagger_continues


@dataclass
class OpenWindow:
    """A session or stagger window of one key: `[start, end)` and its accumulators."""

    start: int
    end: int
    last: int
    accs: list[Any]


class Emit(Protocol):
    """Where a window's row goes: `final` once, when it closes; not final for `emit = "changes"`
    updates. `own` is the row a KDA SQL sliding window's output carries (its input row's columns)."""

    def __call__(self, key: Any, start: int, end: int, accs: list[Any], final: bool = True,
                 own: dict[str, Any] | None = None) -> None: ...  # fmt: skip


class WindowState:
    """The windows of one app, over every partition of its source."""

    _STATE = ("closed_through", "fixed", "open", "pending", "sliding", "close_heap", "seq")

    def __init__(self, spec: AppSpec, counters: Counters, emit: Emit) -> None:
        self.spec = spec
        self.aggs = spec.aggregates
        self.counters = counters
        self._emit = emit
        self.closed_through = NEVER
        self.fixed: dict[tuple[Any, int], list[Any]] = {}
        self.open: dict[Any, OpenWindow] = {}
        self.pending: list[tuple[int, int, Any, list[Any]]] = []
        self.sliding: dict[Any, list[tuple[int, list[Any]]]] = {}
        self.close_heap: list[tuple[int, int, Any, int]] = []
        self.seq = 0
        self.touched: set[tuple[Any, int]] = set()
        # KDA SQL sliding windows (stream_apps/kda_sql/program.py): RANGE holds [t - size, t], ROWS n
        # holds the row and the n before it, and each output row carries its input row's columns
        program = spec.program
        self._sliding_inclusive = bool(getattr(program, "sliding_inclusive", False))
        self._sliding_rows: int | None = getattr(program, "sliding_rows", None)
        self.carries_row = bool(getattr(program, "carries_row", False))

    # -- snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])

    def open_windows(self) -> int:
        return len(self.fixed) + len(self.open) + len(self.pending) + len(self.sliding)

    # -- input -------------------------------------------------------------------------------
    def add_fixed(self, key: Any, t: int, values: list[Any]) -> int:
        """Add to every open window holding `t`; return 0, or how many windows were already closed
        (negated when all of them were)."""
        window, aggs, fixed = self.spec.window, self.aggs, self.fixed
        starts = fixed_starts(window, t)
        missed = 0
        for start in starts:
            slot = (key, start)
            accs = fixed.get(slot)
            if accs is None:
                end = start + window.size_us
                if end <= self.closed_through:
                    missed += 1
                    continue
                accs = fixed[slot] = [a.new() for a in aggs]
                self.seq += 1
                heapq.heappush(self.close_heap, (end, self.seq, key, start))
                self.counters.windows_opened += 1
            for i, agg in enumerate(aggs):
                accs[i] = agg.add(accs[i], values[i], t)
            if self.spec.emit == "changes":
                self.touched.add(slot)
        if missed == len(starts):
            return -missed
        return missed

    def hold(self, key: Any, t: int, values: list[Any]) -> None:
        """Keep an event of a session, stagger or sliding window until the watermark passes `t`."""
        self.seq += 1
        heapq.heappush(self.pending, (t, self.seq, key, values))

    def emit_changes(self) -> None:
        """`emit = "changes"`: the current value of every fixed window updated since the last call."""
        if not self.touched:
            return
        size_us = self.spec.window.size_us
        for key, start in sorted(self.touched, key=lambda k: (k[1], str(k[0]))):
            accs = self.fixed.get((key, start))
            if accs is not None:
                self._emit(key, start, start + size_us, accs, final=False)
        self.touched.clear()

    # -- closing -----------------------------------------------------------------------------
    def close_through(self, mark: int | None, max_seen: int) -> None:
        """Close every window ending at or before `mark`; everything when `mark` is None (every
        partition idle), and then `closed_through` moves past `max_seen`, the latest event time."""
        flush = mark is None
        limit: int = 2**62 if mark is None else mark
        released: list[tuple[Any, int]] = []
        while self.pending and self.pending[0][0] < limit:
            t, _, key, values = heapq.heappop(self.pending)
            self._release(key, t, values, released)
        ends = []
        while self.close_heap and self.close_heap[0][0] <= limit:
            end, _, key, start = heapq.heappop(self.close_heap)
            if self.spec.window.fixed:
                accs = self.fixed.pop((key, start), None)
                if accs is not None:
                    self._emit(key, start, end, accs)
                    ends.append(end)
            else:
                window = self.open.get(key)
                if window is not None and window.start == start and window.end == end:
                    del self.open[key]
                    self._emit(key, start, end, window.accs)
                    ends.append(end)
        if released:
            self._emit_sliding(released)
        if flush:
            self.closed_through = max([self.closed_through, max_seen + 1, *ends])
        else:
            self.closed_through = max(self.closed_through, limit)
        if self.spec.window.kind == "sliding":
            horizon = self.closed_through - self.spec.window.size_us
            rows_n = self._sliding_rows
            for key in list(self.sliding):
                entries = self.sliding[key]
                if rows_n is not None:  # events still to come need only the last n rows
                    kept = entries[len(entries) - rows_n :] if rows_n else []
                elif self._sliding_inclusive:
                    kept = [entry for entry in entries if entry[0] >= horizon]
                else:
                    kept = [entry for entry in entries if entry[0] > horizon]
                if kept:
                    self.sliding[key] = kept
                else:
                    del self.sliding[key]

    def _release(self, key: Any, t: int, values: list[Any], released: list[tuple[Any, int]]) -> None:
        """Apply one event, in event-time order, to a session, stagger or sliding window."""
        window_spec = self.spec.window
        if window_spec.kind == "sliding":
            self.sliding.setdefault(key, []).append((t, values))
            if not released or released[-1] != (key, t):
                released.append((key, t))
            return
        window = self.open.get(key)
        if window is not None:
            joins = (
                session_continues(window.last, t, window_spec.size_us)
                if window_spec.kind == "session"
                else stagger_continues(window.start, t, window_spec.size_us)
            )
            if not joins:
                del self.open[key]
                self._emit(key, window.start, window.end, window.accs)
                window = None
        if window is None:
            end = t + window_spec.size_us
            window = self.open[key] = OpenWindow(t, end, t, [a.new() for a in self.aggs])
            self.counters.windows_opened += 1
            self.seq += 1
            heapq.heappush(self.close_heap, (end, self.seq, key, t))
        for i, agg in enumerate(self.aggs):
            window.accs[i] = agg.add(window.accs[i], values[i], t)
        window.last = t
        if window_spec.kind == "session" and t + window_spec.size_us != window.end:
            window.end = t + window_spec.size_us
            self.seq += 1
            heapq.heappush(self.close_heap, (window.end, self.seq, key, window.start))

    def _emit_sliding(self, released: list[tuple[Any, int]]) -> None:
        size = self.spec.window.size_us
        rows_n, inclusive, carries_row = self._sliding_rows, self._sliding_inclusive, self.carries_row
        for key, t in dict.fromkeys(released):
            accs = [a.new() for a in self.aggs]
            own = None
            taken = 0
            for t2, values in reversed(self.sliding[key]):
                if t2 > t:
                    continue
                if own is None and carries_row:
                    own = values[-1]  # the last of the rows at t: KDA's last row carried the full count
                if rows_n is not None:
                    if taken > rows_n:
                        break
                    taken += 1
                elif (t2 < t - size) if inclusive else (t2 <= t - size):
                    break
                for i, agg in enumerate(self.aggs):
                    accs[i] = agg.add(accs[i], values[i], t2)
            self.counters.windows_opened += 1
            self._emit(key, t - size, t, accs, own=own)
