"""The windowing engine: event time, watermarks, window state, closing, late events. No I/O.

The runner feeds it batches of Kafka records per partition and calls `advance(now)` on every timer
tick; the engine appends what must be written (final rows, late events, bad records) to its
`outbox`. Its whole state, outbox included, pickles into one snapshot, so a restarted worker
continues exactly where the last durable snapshot left off.

Semantics (DESIGN.md):
- Each partition's watermark is the largest event time it has delivered minus `allowed_lateness`.
  The app's watermark is the minimum over partitions that are not idle; a partition that has not
  delivered an event for `idle_timeout` (wall clock) stops holding it back, unless the runner
  says it still has records to read (`note_waiting`): a partition that is slow to be read is not
  idle (as Flink's Kafka source marks a split idle only when it has nothing to fetch). When every
  partition is idle, every open window closes (idle close) and the watermark moves past the
  latest event; the first record after that gives every partition `idle_timeout` to deliver again.
- Tumbling and hopping windows are updated as events arrive. Sessions, stagger and sliding windows
  depend on the order of a key's events, so their events wait until the watermark passes them and
  are then applied in event-time order: results do not depend on how partitions interleave.
- A window closes once the watermark reaches its end and emits one final row. An event whose
  window has already closed is late: it is written to the late-events topic and counted; for
  hopping windows it still counts in those of its windows that are open.

`WindowEngine` composes four parts, one concept each, as bytewax composes its clock and windower:
stream_apps/records.py (a record's bytes to an event and its time, or the reason it is refused),
stream_apps/watermarks.py (the event-time clock per partition, idle detection),
stream_apps/window_state.py (open windows, aggregates, closing) and stream_apps/outbox.py (final
rows, late events and dead letters formatted into the `Outbox`, the `Counters`). This module feeds
each record through them (the spec's filters, derived fields and a KDA SQL program's `prepare`
are applied here) and holds the snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from core.dead_letters import MALFORMED_RECORD
from stream_apps.outbox import Counters, Outbox, OutboxWriter
from stream_apps.records import Record, RecordDecoder
from stream_apps.spec import AppSpec
from stream_apps.watermarks import Watermarks
from stream_apps.window_state import WindowState

STATE_VERSION = 1


class WindowEngine:
    """Windows of one app over the partitions of its source topic."""

    def __init__(self, spec: AppSpec, partitions: list[int], now_s: float,
                 row_hook: Callable[[dict[str, Any]], None] | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.aggs = spec.aggregates
        self._fields = [a.field for a in self.aggs]
        self.offsets: dict[int, int] = {}
        # a program's own state (KDA SQL's RANDOM_CUT_FOREST forests), kept in the snapshot
        new_state = getattr(spec.program, "new_state", None)
        self.program_state: Any = new_state() if new_state is not None else None
        self._decoder = RecordDecoder(spec)
        self._clock = Watermarks(partitions, spec.idle_timeout_us, spec.allowed_lateness_us, now_s)
        self._writer = OutboxWriter(spec, row_hook, self.program_state)
        self._windows = WindowState(spec, self._writer.counters, self._writer.window)

    # -- the parts' state the runners read ---------------------------------------------------
    @property
    def partitions(self) -> list[int]:
        return self._clock.partitions

    @property
    def last_seen_s(self) -> dict[int, float]:
        """When each partition last delivered (wall clock): a runtime may set it (start-up time does
        not count as idle)."""
        return self._clock.last_seen_s

    @property
    def closed_through(self) -> int:
        """How far windows have been closed (µs); NEVER before the first close."""
        return self._windows.closed_through

    @property
    def outbox(self) -> Outbox:
        return self._writer.outbox

    @property
    def counters(self) -> Counters:
        return self._writer.counters

    # -- snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """offsets, partition_max, max_seen, closed_through, fixed, open, pending, sliding,
        close_heap, seq, outbox, counters, version, fingerprint and, for a program with state, program."""
        state = {"offsets": self.offsets, **self._clock.snapshot(), **self._windows.snapshot(),
                 **self._writer.snapshot()}  # fmt: skip
        state["version"] = STATE_VERSION
        state["fingerprint"] = self.spec.fingerprint
        if self.program_state is not None:
            state["program"] = self.program_state.snapshot()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.offsets = state["offsets"]
        self._clock.restore(state)
        self._windows.restore(state)
        self._writer.restore(state)
        self._windows.counters = self._writer.counters  # one Counters, counted by both
        if self.program_state is not None:
            self.program_state.restore(state.get("program"))

    # -- input -------------------------------------------------------------------------------
    def process(self, partition: int, records: Sequence[Record], now_s: float) -> None:
        """Apply a batch of records (anything with `offset`, `key`, `value`: aiokafka's ConsumerRecord
        or `Record`) read from one partition, in offset order."""
        if not records:
            return
        clock, windows, writer, decoder = self._clock, self._windows, self._writer, self._decoder
        clock.batch_arrived(now_s)
        spec = self.spec
        key_field = spec.key_field
        filters, derive, fields = spec.filters, spec.derive, self._fields
        fixed_kind = spec.window.fixed
        program = spec.program
        carries_row = windows.carries_row
        tumbling_us = spec.window.size_us if spec.window.kind == "tumbling" else 0
        changes = spec.emit == "changes"
        fixed = windows.fixed
        adders = [(i, agg.add) for i, agg in enumerate(self.aggs)]
        counters = writer.counters
        decode = decoder.decode
        decoder.start_batch()
        top = clock.top(partition)
        for record in records:
            offset, key_bytes, raw = record.offset, record.key, record.value
            counters.events_in += 1
            try:
                event, t = decode(raw)
            except Exception as exc:
                writer.refused(partition, offset, key_bytes, raw, *decoder.refusal(raw, exc))
                continue
            if filters and not all(c.test(event) for c in filters):
                counters.filtered += 1
                continue
            for name, condition in derive:
                event[name] = None if event.get(condition.field) is None else int(condition.test(event))
            if t > top:
                top = t
            fields_of = event
            if program is not None:
                try:
                    fields_of = program.prepare(event, t)
                except ValueError as exc:  # the program's RowError: a value that fits no column
                    error_type = getattr(exc, "error_type", MALFORMED_RECORD)
                    writer.refused(partition, offset, key_bytes, raw, error_type, str(exc))
                    continue
                if fields_of is None:
                    counters.filtered += 1
                    continue
                if "__rows" in fields_of:  # per-row pumps' rows go out as their events arrive
                    writer.program_rows(key_bytes, fields_of["__rows"])
                if "__key" not in fields_of:  # the event reaches no window
                    counters.windowed += 1
                    continue
            key = fields_of.get(key_field) if key_field else None
            if key.__class__ not in (str, int, float, bool, type(None), tuple):
                key = json.dumps(key, sort_keys=True)
            values = [fields_of.get(f) if f else None for f in fields]
            if carries_row:
                values.append(fields_of.get("__row"))
            if tumbling_us:
                accs = fixed.get((key, t - t % tumbling_us))
                if accs is not None and not changes:
                    for i, add in adders:
                        accs[i] = add(accs[i], values[i], t)
                    counters.windowed += 1
                    continue
            if fixed_kind:
                missed = windows.add_fixed(key, t, values)
                if missed:
                    writer.late(partition, offset, key_bytes, event, t, missed, all_missed=missed < 0,
                                watermark=windows.closed_through)  # fmt: skip
                    continue
            elif t < windows.closed_through:
                writer.late(partition, offset, key_bytes, event, t, 1, all_missed=True,
                            watermark=windows.closed_through)  # fmt: skip
                continue
            else:
                windows.hold(key, t, values)
            counters.windowed += 1
        self.offsets[partition] = records[-1].offset + 1
        clock.delivered(partition, top, now_s)
        if changes:
            windows.emit_changes()

    # -- time --------------------------------------------------------------------------------
    def note_waiting(self, partitions: Iterable[int], now_s: float) -> None:
        """`partitions` have records on the broker not read yet: not idle (Watermarks.note_waiting)."""
        self._clock.note_waiting(partitions, now_s)

    def watermark(self, now_s: float) -> int | None:
        """The app's watermark now (Watermarks.watermark)."""
        return self._clock.watermark(now_s)

    def all_idle(self, now_s: float) -> bool:
        return self._clock.all_idle(now_s)

    def open_windows(self) -> int:
        return self._windows.open_windows()

    def advance(self, now_s: float) -> int:
        """Close what the watermark (or idleness of every partition) allows; return rows closed."""
        clock, windows = self._clock, self._windows
        before = self.counters.windows_closed
        if clock.all_idle(now_s):
            if windows.fixed or windows.open or windows.pending:
                windows.close_through(None, clock.max_seen)
        else:
            mark = clock.watermark(now_s)
            if mark is not None and mark > windows.closed_through:
                windows.close_through(mark, clock.max_seen)
        return self.counters.windows_closed - before
