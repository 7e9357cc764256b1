"""A KDA SQL program as a stream app: the AppSpec that the window engine and both runtimes run.

KDA's application configuration maps to flags (AWS, Kinesis Data Analytics API, `Inputs` and
`Outputs`): `SOURCE_SQL_STREAM_001` reads the source topic; the output stream (the one no pump
reads) is written to `--sink-topic` when it is `DESTINATION_SQL_STREAM`, or to the topic of its
`--output STREAM=TOPIC`. Settings may also come from `-- tidelake: key = value` comments
(program.py); flags win.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import ConfigError
from core.topics import CLICKSTREAM_EVENTS, analytics_topic
from stream_apps.aggregates import Aggregate
from stream_apps.durations import parse_duration_us
from stream_apps.kda_sql.inputs import DESTINATION_STREAM, load_input_schema
from stream_apps.kda_sql.program import Program, load_program
from stream_apps.spec import AppSpec
from stream_apps.windows import WindowSpec


def app_name(path: Path) -> str:
    """`apps/My App.sql` -> `my-app` (the state folder and consumer group)."""
    return re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-") or "kda-sql-app"


def parse_outputs(items: list[str]) -> dict[str, str]:
    """`["ERRORS=analytics.errors"]` -> {"ERRORS": "analytics.errors"}: names as KDA SQL reads them
    (unquoted upper case: `errors=...` maps stream ERRORS; `"errors"=...` the quoted one)."""
    out = {}
    for item in items:
        stream, sep, topic = item.partition("=")
        if not sep or not stream.strip() or not topic.strip():
            msg = f"--output {item!r}: write STREAM=TOPIC, e.g. --output ERROR_COUNTS=analytics.error-counts"
            raise ConfigError(msg)
        stream = stream.strip()
        out[stream[1:-1] if stream.startswith('"') and stream.endswith('"') else stream.upper()] = (
            topic.strip()
        )
    return out


def sql_app_spec(path: Path, *, source: str | None = None, sink_topic: str | None = None,
                 outputs: dict[str, str] | None = None, input_schema: Path | None = None,
                 time_field: str | None = None, allowed_lateness: str | None = None,
                 idle_timeout: str | None = None, name: str | None = None) -> AppSpec:  # fmt: skip
    """Compile the program at `path` and give the spec that runs it (ConfigError when it cannot)."""
    columns = load_input_schema(input_schema) if input_schema is not None else ()
    program = load_program(path, time_field, columns)
    settings = program.settings
    output = program.output.name
    outputs = dict(outputs or {})
    topic = outputs.pop(output, None)
    if output == DESTINATION_STREAM and topic is None:
        topic = sink_topic or settings.get("sink_topic")
    elif sink_topic:
        msg = f"{path}: --sink-topic maps {DESTINATION_STREAM}, but the program's output is {output}; write --output {output}=TOPIC"
        raise ConfigError(msg)
    if outputs:
        msg = f"{path}: --output names {', '.join(outputs)}, but the program's only output stream is {output}"
        raise ConfigError(msg)
    app = name or settings.get("name") or app_name(path)
    return program_spec(
        program, app, source=source or settings.get("source") or CLICKSTREAM_EVENTS,
        sink_topic=topic or analytics_topic(app),
        allowed_lateness=allowed_lateness or settings.get("allowed_lateness"),
        idle_timeout=idle_timeout or settings.get("idle_timeout"),
    )  # fmt: skip


def program_spec(program: Program, name: str, *, source: str, sink_topic: str, allowed_lateness: str | None = None,
                 idle_timeout: str | None = None) -> AppSpec:  # fmt: skip
    """The AppSpec of a compiled program: its window (a per-row program gets a nominal one it never
    uses), an engine aggregate per SQL aggregate over the prepared field `__aI`, the key `__key`."""
    grouped = program.grouped
    if grouped is not None and grouped.window is not None:
        kind, size_us = grouped.window
        aggregates = tuple(
            Aggregate(a.kind) if a.kind == "count" else Aggregate(a.kind, f"__a{i}", a.n)
            for i, a in enumerate(grouped.aggregates)
        )
        # a GROUP BY without aggregates (distinct keys per window) still needs one accumulator
        aggregates = aggregates or (Aggregate("count"),)
        window = WindowSpec(kind, size_us)
        key_field = "__key" if grouped.keys else None
    else:
        window, aggregates, key_field = WindowSpec("tumbling", 60_000_000), (Aggregate("count"),), None
    return AppSpec(
        name=name, window=window, aggregates=aggregates, source=source, key_field=key_field,
        time_field=program.time_field,
        allowed_lateness_us=parse_duration_us(allowed_lateness, "allowed_lateness") if allowed_lateness else 0,
        idle_timeout_us=parse_duration_us(idle_timeout or "10s", "idle_timeout"), sink_topic=sink_topic,
        kda_sql=program.source.text, program=program,
    )  # fmt: skip
