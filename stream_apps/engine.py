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
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from core.dead_letters import BAD_EVENT_TIME, MALFORMED_RECORD, DeadLetter, stream_app_process
from core.late_events import late_event
from stream_apps.durations import TimeParser, format_duration, format_time_us
from stream_apps.spec import AppSpec
from stream_apps.windows import fixed_starts, session_continues, stagger_continues

NEVER = -(2**62)
#: What no time field's value equals, not even JSON null: the cache of the last parsed time starts empty.
_NO_TIME_YET = object()
STATE_VERSION = 1


class Record(NamedTuple):
    """One Kafka record as the engine reads it."""

    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Counters:
    """What the engine has seen; `events_in = windowed + filtered + late_only + errors`."""

    events_in: int = 0
    windowed: int = 0
    filtered: int = 0
    late: int = 0
    late_only: int = 0
    errors: int = 0
    windows_opened: int = 0
    windows_closed: int = 0
    rows_out: int = 0


@dataclass
class OpenWindow:
    """A session or stagger window of one key: `[start, end)` and its accumulators."""

    start: int
    end: int
    last: int
    accs: list[Any]


@dataclass
class Outbox:
    """Messages to write, in order: (key, value) rows, late events and (key, value, headers) errors."""

    rows: list[tuple[bytes, bytes]] = field(default_factory=list)
    late: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    errors: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.late) + len(self.errors)

    def clear(self) -> None:
        """Forget everything: call only once the broker has acknowledged all of it."""
        self.rows.clear()
        self.late.clear()
        self.errors.clear()


class WindowEngine:
    """Windows of one app over the partitions of its source topic."""

    def __init__(self, spec: AppSpec, partitions: list[int], now_s: float,
                 row_hook: Callable[[dict[str, Any]], None] | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.aggs = spec.aggregates
        self._fields = [a.field for a in self.aggs]
        self._row_hook = row_hook
        self.partitions = list(partitions)
        self.offsets: dict[int, int] = {}
        self.partition_max: dict[int, int | None] = dict.fromkeys(partitions)
        self.last_seen_s: dict[int, float] = dict.fromkeys(partitions, now_s)
        self.max_seen = NEVER
        self.closed_through = NEVER
        self.fixed: dict[tuple[Any, int], list[Any]] = {}
        self.open: dict[Any, OpenWindow] = {}
        self.pending: list[tuple[int, int, Any, list[Any]]] = []
        self.sliding: dict[Any, list[tuple[int, list[Any]]]] = {}
        self.close_heap: list[tuple[int, int, Any, int]] = []
        self.seq = 0
        self.touched: set[tuple[Any, int]] = set()
        self.outbox = Outbox()
        self.counters = Counters()
        # KDA SQL sliding windows (stream_apps/kda_sql/program.py): RANGE holds [t - size, t], ROWS n
        # holds the row and the n before it, and each output row carries its input row's columns
        program = spec.program
        self._sliding_inclusive = bool(getattr(program, "sliding_inclusive", False))
        self._sliding_rows: int | None = getattr(program, "sliding_rows", None)
        self._carries_row = bool(getattr(program, "carries_row", False))
        # a program reads times as its SQL does (KDA: a TIMESTAMP without an offset is UTC)
        self._parse_time = getattr(program, "parse_time_us", None) or TimeParser()
        self._time_text: dict[int, str] = {}
        # a program's own state (KDA SQL's RANDOM_CUT_FOREST forests), kept in the snapshot
        new_state = getattr(program, "new_state", None)
        self.program_state: Any = new_state() if new_state is not None else None

    # -- snapshot ----------------------------------------------------------------------------
    _STATE = ("offsets", "partition_max", "max_seen", "closed_through", "fixed", "open", "pending",
              "sliding", "close_heap", "seq", "outbox", "counters")  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in self._STATE}
        state["version"] = STATE_VERSION
        state["fingerprint"] = self.spec.fingerprint
        if self.program_state is not None:
            state["program"] = self.program_state.snapshot()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])
        for partition in self.partitions:
            self.partition_max.setdefault(partition, None)
        if self.program_state is not None:
            self.program_state.restore(state.get("program"))

    # -- input -------------------------------------------------------------------------------
    def process(self, partition: int, records: Sequence[Record], now_s: float) -> None:
        """Apply a batch of records (anything with `offset`, `key`, `value`: aiokafka's ConsumerRecord
        or `Record`) read from one partition, in offset order."""
        if not records:
            return
        if self.all_idle(now_s):
            # The app was wholly idle (a stack waiting for its first replay, a replay restarted): every
            # partition gets `idle_timeout` to deliver again before the first one read sets the
            # watermark alone (the others' records are often only milliseconds behind).
            for other in self.partitions:
                self.last_seen_s[other] = now_s
        spec = self.spec
        time_field, key_field = spec.time_field, spec.key_field
        filters, derive, fields = spec.filters, spec.derive, self._fields
        fixed_kind = spec.window.fixed
        program = spec.program
        carries_row = self._carries_row
        tumbling_us = spec.window.size_us if spec.window.kind == "tumbling" else 0
        changes = spec.emit == "changes"
        fixed = self.fixed
        adders = [(i, agg.add) for i, agg in enumerate(self.aggs)]
        counters = self.counters
        loads = orjson.loads
        parse_time = self._parse_time
        pmax = self.partition_max.get(partition)
        top = NEVER if pmax is None else pmax
        last_text, last_t = _NO_TIME_YET, 0  # a null time must be parsed (and refused), never reused
        for record in records:
            offset, key_bytes, raw = record.offset, record.key, record.value
            counters.events_in += 1
            try:
                event = loads(raw)  # type: ignore[arg-type]
                text = event[time_field]
                if text != last_text:
                    last_t = parse_time(text)
                    last_text = text
                t = last_t
            except Exception as exc:
                self._bad_record(partition, offset, key_bytes, raw, exc)
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
                    self._rejected(partition, offset, key_bytes, raw, exc)
                    continue
                if fields_of is None:
                    counters.filtered += 1
                    continue
                if "__rows" in fields_of:  # per-row pumps' rows go out as their events arrive
                    self._emit_rows(key_bytes, fields_of["__rows"])
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
                missed = self._add_fixed(key, t, values)
                if missed:
                    self._late(partition, offset, key_bytes, event, t, missed, all_missed=missed < 0)
                    continue
            elif t < self.closed_through:
                self._late(partition, offset, key_bytes, event, t, 1, all_missed=True)
                continue
            else:
                self.seq += 1
                heapq.heappush(self.pending, (t, self.seq, key, values))
            counters.windowed += 1
        self.offsets[partition] = records[-1].offset + 1
        if top != NEVER:
            self.partition_max[partition] = top
            if top > self.max_seen:
                self.max_seen = top
        self.last_seen_s[partition] = now_s
        if spec.emit == "changes" and self.touched:
            for key, start in sorted(self.touched, key=lambda k: (k[1], str(k[0]))):
                accs = self.fixed.get((key, start))
                if accs is not None:
                    self._emit(key, start, start + spec.window.size_us, accs, final=False)
            self.touched.clear()

    def _add_fixed(self, key: Any, t: int, values: list[Any]) -> int:
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

    # -- time --------------------------------------------------------------------------------
    def note_waiting(self, partitions: Iterable[int], now_s: float) -> None:
        """`partitions` have records on the broker that the runner has not read yet (its position is
        behind the partition's end): they are not idle, and keep holding the watermark back until
        they deliver. Without this, after a pause longer than `idle_timeout` (a replay restarted,
        a busy machine) the first partition read again would set the watermark alone and the
        others' backlog would arrive late."""
        for partition in partitions:
            self.last_seen_s[partition] = now_s

    def watermark(self, now_s: float) -> int | None:
        """The app's watermark now; None while a live partition has not delivered anything yet."""
        idle_s = self.spec.idle_timeout_us / 1_000_000
        live = [p for p in self.partitions if now_s - self.last_seen_s.get(p, now_s) < idle_s]
        if not live:
            return None
        tops = [self.partition_max.get(p) for p in live]
        if any(top is None for top in tops):
            return NEVER
        return min(tops) - self.spec.allowed_lateness_us  # type: ignore[type-var,operator]

    def all_idle(self, now_s: float) -> bool:
        idle_s = self.spec.idle_timeout_us / 1_000_000
        return all(now_s - self.last_seen_s.get(p, now_s) >= idle_s for p in self.partitions)

    def open_windows(self) -> int:
        return len(self.fixed) + len(self.open) + len(self.pending) + len(self.sliding)

    def advance(self, now_s: float) -> int:
        """Close what the watermark (or idleness of every partition) allows; return rows closed."""
        before = self.counters.windows_closed
        if self.all_idle(now_s):
            if self.fixed or self.open or self.pending:
                self._close_through(None)
        else:
            mark = self.watermark(now_s)
            if mark is not None and mark > self.closed_through:
                self._close_through(mark)
        return self.counters.windows_closed - before

    def _close_through(self, mark: int | None) -> None:
        """Close every window ending at or before `mark`; everything when `mark` is None (idle)."""
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
            self.closed_through = max([self.closed_through, self.max_seen + 1, *ends])
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
        rows_n, inclusive, carries_row = self._sliding_rows, self._sliding_inclusive, self._carries_row
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

    # -- output ------------------------------------------------------------------------------
    def _emit(self, key: Any, start: int, end: int, accs: list[Any], final: bool = True,
              own: dict[str, Any] | None = None) -> None:  # fmt: skip
        program = self.spec.program
        if program is not None:
            results = [agg.result(acc) for agg, acc in zip(self.aggs, accs, strict=True)]
            try:
                rows = program.rows(key, start, end, results, own, self.program_state)
            except ValueError as exc:  # the program's RowError: the window's row cannot be computed
                rows = []
                self._window_rejected(key, start, end, results, exc)
            if final:
                self.counters.windows_closed += 1
            self._emit_rows(f"{'' if key is None else key}|{self._format_time(start)}".encode(), rows)
            return
        row: dict[str, Any] = {}
        if self.spec.key_field:
            row[self.spec.key_field] = key
        row["window_start"] = self._format_time(start)
        row["window_end"] = self._format_time(end)
        for agg, acc in zip(self.aggs, accs, strict=True):
            row[agg.output_name] = agg.result(acc)
        if final:
            self.counters.windows_closed += 1
            if self._row_hook is not None:
                self._row_hook(row)
        self.counters.rows_out += 1
        message_key = f"{'' if key is None else key}|{row['window_start']}".encode()
        self.outbox.rows.append((message_key, orjson.dumps(row)))

    def _emit_rows(self, message_key: bytes | None, rows: list[dict[str, Any]]) -> None:
        """Rows a program shaped (named and typed by its output stream's columns)."""
        for row in rows:
            self.counters.rows_out += 1
            self.outbox.rows.append((message_key or b"", orjson.dumps(row)))

    def _rejected(
        self, partition: int, offset: int, key: bytes | None, raw: bytes | None, exc: Exception
    ) -> None:
        """Dead-letter a record the program rejected: a field that does not fit the input schema
        (KDA's error_stream), or a value no expression can compute (a failed CAST)."""
        self.counters.errors += 1
        letter = DeadLetter(
            error_type=getattr(exc, "error_type", MALFORMED_RECORD),
            message=str(exc),
            process=stream_app_process(self.spec.name),
            time=dt.datetime.now(dt.UTC),
            topic=self.spec.source,
            partition=partition,
            offset=offset,
        )
        self.outbox.errors.append((key, raw or b"", letter.headers()))

    def _window_rejected(self, key: Any, start: int, end: int, results: list[Any], exc: Exception) -> None:
        """Dead-letter a closed window whose output row a program cannot compute (a failed CAST, a
        division by zero): no one record gave it, so the letter's value is the window (its key,
        bounds and aggregate results) and its reason; the app counts an error and goes on."""
        self.counters.errors += 1
        window = {"key": key, "window_start": self._format_time(start), "window_end": self._format_time(end),
                  "aggregates": results}  # fmt: skip
        letter = DeadLetter(
            error_type=getattr(exc, "error_type", MALFORMED_RECORD),
            message=f"window {window['window_start']} to {window['window_end']} of key {key!r}: {exc}",
            process=stream_app_process(self.spec.name),
            time=dt.datetime.now(dt.UTC),
            topic=self.spec.source,
        )
        value = orjson.dumps(window, default=str)
        self.outbox.errors.append((f"{'' if key is None else key}".encode(), value, letter.headers()))

    def _format_time(self, us: int) -> str:
        text = self._time_text.get(us)
        if text is None:
            if len(self._time_text) > 100_000:
                self._time_text.clear()
            text = self._time_text[us] = format_time_us(us)
        return text

    def _late(self, partition: int, offset: int, key: bytes | None, event: dict[str, Any], t: int,
              missed: int, *, all_missed: bool) -> None:  # fmt: skip
        self.counters.late += 1
        if all_missed:
            self.counters.late_only += 1
        else:
            self.counters.windowed += 1
        record = late_event(
            app=self.spec.name,
            topic=self.spec.source,
            partition=partition,
            offset=offset,
            event_time=format_time_us(t),
            watermark=format_time_us(self.closed_through),
            missed_windows=abs(missed),
            allowed_lateness=format_duration(self.spec.allowed_lateness_us)
            if self.spec.allowed_lateness_us
            else "0s",
            event=event,
        )
        self.outbox.late.append((key, orjson.dumps(record)))

    def _bad_record(
        self, partition: int, offset: int, key: bytes | None, raw: bytes | None, exc: Exception
    ) -> None:
        """Dead-letter a record that has no readable event time (core/dead_letters.py's contract).
        Bad records are rare, so the reason is worked out again here, off the hot path."""
        self.counters.errors += 1
        time_field = self.spec.time_field
        error_type, message = MALFORMED_RECORD, ""
        try:
            event = orjson.loads(raw)  # type: ignore[arg-type]
        except orjson.JSONDecodeError as error:
            message = "no value (a tombstone)" if raw is None else f"not JSON: {error}"
        else:
            if not isinstance(event, dict):
                kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
                message = f"not a JSON object but {kind.get(type(event), 'a number')}"
            elif event.get(time_field) is None:
                error_type = BAD_EVENT_TIME
                message = (
                    f"no event time: field {time_field!r} is {'null' if time_field in event else 'absent'}"
                )
            else:
                error_type = BAD_EVENT_TIME
                value = event[time_field]
                detail = f" ({exc})" if isinstance(value, str) else ""
                message = f"field {time_field!r}: {value!r} is not an ISO-8601 time with a UTC offset{detail}"
        letter = DeadLetter(
            error_type=error_type,
            message=message,
            process=stream_app_process(self.spec.name),
            time=dt.datetime.now(dt.UTC),
            topic=self.spec.source,
            partition=partition,
            offset=offset,
        )
        self.outbox.errors.append((key, raw or b"", letter.headers()))
