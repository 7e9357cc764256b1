"""What the window engine hands its runner: the `Outbox` of messages to write, the `Counters` of
what it has seen, and the `OutboxWriter` that formats each message.

The messages, each a contract with its readers:
- final rows (and `emit = "changes"` updates): key `<key>|<window_start>`, value a JSON object of
  the key field, `window_start`, `window_end` and one field per aggregate (docs/stream_apps.md,
  "Output rows"), or the rows a KDA SQL program shapes from the window (its output stream's columns);
- late events: core/late_events.py's record, for the late-events topic;
- dead letters: the record's own key and bytes with core/dead_letters.py's headers, for the app's
  DLQ; a window whose row a program cannot compute goes there too, the window as the value.

Separate from the window state (stream_apps/window_state.py), which hands over closed windows as
accumulators and knows no format, and from decoding (stream_apps/records.py), which says why a
record is refused but writes nothing. The outbox and the counters are part of the engine's snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.dead_letters import MALFORMED_RECORD, DeadLetter, stream_app_process
from core.late_events import late_event
from stream_apps.durations import format_duration, format_time_us
from stream_apps.spec import AppSpec


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


class OutboxWriter:
    """Formats one app's messages into its `outbox` and counts them in its `counters`.

    `row_hook` sees each final row of a TOML app before it is written (the `[anomaly]` scorer adds
    its columns); `program_state` is a KDA SQL program's own state (its RANDOM_CUT_FOREST forests),
    which its `rows` reads and updates."""

    _STATE = ("outbox", "counters")

    def __init__(self, spec: AppSpec, row_hook: Callable[[dict[str, Any]], None] | None = None,
                 program_state: Any = None) -> None:  # fmt: skip
        self.spec = spec
        self.aggs = spec.aggregates
        self._row_hook = row_hook
        self._program_state = program_state
        self._time_text: dict[int, str] = {}
        self.outbox = Outbox()
        self.counters = Counters()

    # -- snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])

    # -- windows -----------------------------------------------------------------------------
    def window(self, key: Any, start: int, end: int, accs: list[Any], final: bool = True,
               own: dict[str, Any] | None = None) -> None:  # fmt: skip
        """The row of a window `[start, end)` (µs) of `key` (window_state.Emit)."""
        program = self.spec.program
        if program is not None:
            results = [agg.result(acc) for agg, acc in zip(self.aggs, accs, strict=True)]
            try:
                rows = program.rows(key, start, end, results, own, self._program_state)
            except ValueError as exc:  # the program's RowError: the window's row cannot be computed
                rows = []
                self._window_refused(key, start, end, results, exc)
            if final:
                self.counters.windows_closed += 1
            self.program_rows(f"{'' if key is None else key}|{self._format_time(start)}".encode(), rows)
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

    def program_rows(self, message_key: bytes | None, rows: list[dict[str, Any]]) -> None:
        """Rows a program shaped (named and typed by its output stream's columns)."""
        for row in rows:
            self.counters.rows_out += 1
            self.outbox.rows.append((message_key or b"", orjson.dumps(row)))

    def _window_refused(self, key: Any, start: int, end: int, results: list[Any], exc: Exception) -> None:
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

    # -- records -----------------------------------------------------------------------------
    def late(self, partition: int, offset: int, key: bytes | None, event: dict[str, Any], t: int,
             missed: int, *, all_missed: bool, watermark: int) -> None:  # fmt: skip
        """An event at `t` (µs) that missed `missed` windows (negated: all of its windows), closed
        through `watermark`: counted, and written to the late-events topic."""
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
            watermark=format_time_us(watermark),
            missed_windows=abs(missed),
            allowed_lateness=format_duration(self.spec.allowed_lateness_us)
            if self.spec.allowed_lateness_us
            else "0s",
            event=event,
        )
        self.outbox.late.append((key, orjson.dumps(record)))

    def refused(self, partition: int, offset: int, key: bytes | None, raw: bytes | None,
                error_type: str, message: str) -> None:  # fmt: skip
        """Dead-letter a record: one that cannot be read (records.RecordDecoder.refusal gives the
        reason), or one a program rejected: a field that does not fit the input schema (KDA's
        error_stream), or a value no expression can compute (a failed CAST)."""
        self.counters.errors += 1
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
