"""Stream apps (the Kinesis Data Analytics part): windowed apps over a Kafka topic, with event
time, idle close, a late-events side output and exactly one final row per window.

- the spec: `load_spec` (a TOML file), `spec_from_mapping`, `resolve_spec` (a shipped name or a
  path), `AppSpec`;
- the window engine, with no I/O: `WindowEngine` fed `Record`s per partition, its `Outbox`,
  `Counters`, and the window and aggregate parsers;
- the runtimes: `StreamWorker` (aiokafka) and `FaustWorker` (Faust) with `WorkerOptions` and
  `Progress`, and `FaustWindows`, which hosts a spec's windows inside your own `faust.App`
  (docs/stream_apps.md, "Hosting tidelake's windows in your own Faust app").

Public surface (`__all__`, guarded by tests/unit/test_exported_members.py). Names resolve on first
use (PEP 562 `__getattr__`): `import stream_apps` imports neither Kafka clients nor Faust.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_names import lazy_names

if TYPE_CHECKING:
    from stream_apps.aggregates import Aggregate, parse_aggregate
    from stream_apps.catalog import resolve_spec, shipped_specs
    from stream_apps.engine import WindowEngine
    from stream_apps.faust_runtime import FaustWorker
    from stream_apps.faust_windows import FaustWindows
    from stream_apps.flink_sql import FlinkScript, FlinkUnsupported, compile_flink_sql
    from stream_apps.outbox import Counters, Outbox
    from stream_apps.records import Record
    from stream_apps.spec import AppSpec, load_spec, spec_from_mapping
    from stream_apps.windows import WindowSpec, parse_window
    from stream_apps.worker import Progress, StreamWorker, WorkerOptions

#: Each public name and the module that defines it.
_SOURCES = {
    "Aggregate": "stream_apps.aggregates",
    "AppSpec": "stream_apps.spec",
    "Counters": "stream_apps.outbox",
    "FaustWindows": "stream_apps.faust_windows",
    "FaustWorker": "stream_apps.faust_runtime",
    "FlinkScript": "stream_apps.flink_sql",
    "FlinkUnsupported": "stream_apps.flink_refusals",
    "Outbox": "stream_apps.outbox",
    "Progress": "stream_apps.worker",
    "Record": "stream_apps.records",
    "StreamWorker": "stream_apps.worker",
    "WindowEngine": "stream_apps.engine",
    "WindowSpec": "stream_apps.windows",
    "WorkerOptions": "stream_apps.worker",
    "compile_flink_sql": "stream_apps.flink_sql",
    "load_spec": "stream_apps.spec",
    "parse_aggregate": "stream_apps.aggregates",
    "parse_window": "stream_apps.windows",
    "resolve_spec": "stream_apps.catalog",
    "shipped_specs": "stream_apps.catalog",
    "spec_from_mapping": "stream_apps.spec",
}

__all__ = [
    "Aggregate",
    "AppSpec",
    "Counters",
    "FaustWindows",
    "FaustWorker",
    "FlinkScript",
    "FlinkUnsupported",
    "Outbox",
    "Progress",
    "Record",
    "StreamWorker",
    "WindowEngine",
    "WindowSpec",
    "WorkerOptions",
    "compile_flink_sql",
    "load_spec",
    "parse_aggregate",
    "parse_window",
    "resolve_spec",
    "shipped_specs",
    "spec_from_mapping",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, __all__)
