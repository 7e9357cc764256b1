"""A stream app compiled to a Flink SQL script (`tidelake stream export --to flink-sql`, and what
`tidelake stream run --runtime flink` runs): the same source topic, the same windows and
aggregates, the same Kafka message key and JSON value on the same output topic.

The script, in order: SET lines (UTC, checkpointing exactly-once, the pipeline's name), the source
table (Kafka, JSON, the watermark and the idle timeout), a view of the events the app windows
(filters and derived fields applied), the sink table (Kafka, exactly-once transactions, the message
key as raw bytes and the row as JSON) and one INSERT INTO the sink. What Flink SQL cannot express is
refused with FlinkUnsupported (stream_apps/flink_refusals.py); docs/flink.md has the mapping.

Field types: Flink's JSON format reads typed columns. A field of the clickstream schema
(core/events.py) read from `clickstream.events` takes its type there; any other field is typed by
its use: a filter or derive comparing it with a number makes it BIGINT or DOUBLE (with true/false,
BOOLEAN), `sum`/`avg`/`min`/`max` make it DOUBLE, anything else is STRING. `field_types` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.events import CLICKSTREAM_FIELDS
from core.topics import CLICKSTREAM_EVENTS
from stream_apps.flink_refusals import FlinkUnsupported, refuse, sub_millisecond
from stream_apps.spec import AppSpec

#: The JSON value's time format: core.events' `2019-01-22T00:26:16.000000Z`.
TIME_FORMAT = "yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''"
#: A sink's Kafka transaction timeout: below the broker's transaction.max.timeout.ms (15 min).
TRANSACTION_TIMEOUT_MS = 600_000
MESSAGE_KEY = "__message_key"
#: The rowtime (TIMESTAMP(3): Flink's event time, windows and watermark) and the event time to the
#: microsecond (TIMESTAMP(6): the times and durations rows show, the order of first/last).
ROWTIME = "__t"
EVENT_TIME = "__ts"
#: The event time in microseconds since 1970 (BIGINT), for `duration`.
MICROS = "__us"
_PARQUET_TO_FLINK = {"string": "STRING", "int32": "INT", "int64": "BIGINT", "bool": "BOOLEAN"}
_INTEGRAL = ("TINYINT", "SMALLINT", "INT", "BIGINT")


@dataclass(frozen=True)
class FlinkScript:
    """A complete Flink SQL script for one app (the module docstring says what is in it)."""

    app: str
    source_topic: str
    sink_topic: str
    source_group: str
    transactional_id_prefix: str
    statements: tuple[str, ...]

    @property
    def insert(self) -> str:
        """The INSERT statement (the last one), which the runtime EXPLAINs and executes."""
        return self.statements[-1]

    @property
    def text(self) -> str:
        """The script as `sql-client.sh -f` runs it: a header comment, statements ending in `;`."""
        header = (
            f"-- tidelake stream app {self.app!r} as Flink SQL (tidelake stream export {self.app} --to flink-sql).\n"
            f"-- Reads {self.source_topic}, writes {self.sink_topic} exactly once (Kafka transactions: read it\n"
            "-- with isolation.level=read_committed). Run it with a Flink SQL client that has the Kafka SQL\n"
            "-- connector (flink-sql-connector-kafka) on its classpath: sql-client.sh -f FILE.\n"
            "-- What differs from tidelake's own runtimes: docs/flink.md.\n\n"
        )
        return header + ";\n\n".join(self.statements) + ";\n"


def quote(name: str) -> str:
    """A Flink SQL identifier: `name`, backticks doubled."""
    return "`" + name.replace("`", "``") + "`"


def literal(text: str) -> str:
    """A Flink SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


_UNITS = (("DAY", 86_400_000_000), ("HOUR", 3_600_000_000), ("MINUTE", 60_000_000), ("SECOND", 1_000_000))


def interval(us: int) -> str:
    """`INTERVAL '5' MINUTE`; whole milliseconds only (the caller refuses the rest). Values that do
    not fit a unit's two digits (Flink's default interval precision) are written DAY TO SECOND."""
    for unit, size in _UNITS:
        if us % size == 0 and us // size < 100:
            return f"INTERVAL '{us // size}' {unit}"
    if us < 100_000_000:
        return f"INTERVAL '{us // 1_000_000}.{us % 1_000_000 // 1000:03d}' SECOND"
    ms = us // 1000
    days, ms = divmod(ms, 86_400_000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}' DAY TO SECOND(3)"


def check_ms(app: str, what: str, us: int, spelling: str) -> None:
    if us % 1000:
        raise refuse(app, what, sub_millisecond(what, spelling))


def formatted(expr: str) -> str:
    """A TIMESTAMP as tidelake's rows write it (`2019-01-22T00:26:00.000000Z`)."""
    return f"DATE_FORMAT({expr}, '{TIME_FORMAT}')"


def field_types(spec: AppSpec, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Flink type of every source field the app reads (module docstring), time field excluded."""
    known = {name: _PARQUET_TO_FLINK.get(kind, "STRING") for name, kind, _ in CLICKSTREAM_FIELDS}
    schema = known if spec.source == CLICKSTREAM_EVENTS else {}
    derived = {name for name, _ in spec.derive}
    types: dict[str, str] = {}

    def note(name: str, kind: str) -> None:
        if name == spec.time_field or name in derived or name in types:
            return
        types[name] = schema.get(name, kind)

    for condition in (*spec.filters, *(c for _, c in spec.derive)):
        value = condition.value
        note(condition.field, "BOOLEAN" if isinstance(value, bool) else
             "BIGINT" if isinstance(value, int) else "DOUBLE" if isinstance(value, float) else "STRING")  # fmt: skip
    for agg in spec.aggregates:
        if agg.field is not None:
            note(agg.field, "DOUBLE" if agg.kind in ("sum", "avg", "min", "max") else "STRING")
    if spec.key_field:
        note(spec.key_field, "STRING")
    for name, kind in (overrides or {}).items():
        if name in types:
            types[name] = kind
    return types


def source_table(spec: AppSpec, name: str, columns: Mapping[str, str], *, bootstrap_servers: str,
                 group: str) -> str:  # fmt: skip
    """The Kafka source: the app's fields, the rowtime parsed from the time field, the watermark
    and the idle timeout of each partition. The watermark is the allowed lateness plus 1 ms (Flink
    fires a window `[start, end)` when its watermark reaches `end - 1 ms`, tidelake when the latest
    event time less the lateness reaches `end`); a session app's plus 2 ms, since its SESSION
    window is a gap 1 ms shorter (flink_windows.tvf)."""
    lateness_us = spec.allowed_lateness_us + (2000 if spec.window.kind == "session" else 1000)
    lines = [f"{quote(spec.time_field)} STRING"]
    lines += [f"{quote(field)} {kind}" for field, kind in columns.items()]
    parsed = parsed_time(quote(spec.time_field))
    lines.append(f"{quote(EVENT_TIME)} AS {parsed}")
    lines.append(f"{quote(ROWTIME)} AS CAST({parsed} AS TIMESTAMP(3))")
    lines.append(f"WATERMARK FOR {quote(ROWTIME)} AS {quote(ROWTIME)} - {interval(lateness_us)}")
    options = {
        "connector": "kafka",
        "topic": spec.source,
        "properties.bootstrap.servers": bootstrap_servers,
        "properties.group.id": group,
        "properties.auto.offset.reset": "earliest",
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": "group-offsets",
        "scan.watermark.idle-timeout": f"{spec.idle_timeout_us // 1000} ms",
        "format": "json",
        "json.ignore-parse-errors": "true",
        "json.fail-on-missing-field": "false",
    }
    return _create(name, lines, options)


def parsed_time(column: str) -> str:
    """The event time (ISO-8601 text in UTC with a `Z`, as core.events writes it) as a TIMESTAMP(6);
    NULL when it is not such text (the row is then skipped)."""
    return f"TRY_CAST(REPLACE(REPLACE({column}, 'T', ' '), 'Z', '') AS TIMESTAMP(6))"


def sink_table(spec: AppSpec, name: str, columns: Mapping[str, str], *, bootstrap_servers: str,
               prefix: str) -> str:  # fmt: skip
    """The Kafka sink: the message key (raw UTF-8 bytes, not in the value) and the row as JSON."""
    lines = [f"{quote(MESSAGE_KEY)} STRING"] + [f"{quote(c)} {kind}" for c, kind in columns.items()]
    options = {
        "connector": "kafka",
        "topic": spec.sink_topic,
        "properties.bootstrap.servers": bootstrap_servers,
        "properties.transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": prefix,
        "key.format": "raw",
        "key.fields": MESSAGE_KEY,
        "value.format": "json",
        "value.fields-include": "EXCEPT_KEY",
    }
    return _create(name, lines, options)


def _create(name: str, lines: list[str], options: Mapping[str, str]) -> str:
    body = ",\n".join(f"    {line}" for line in lines)
    with_ = ",\n".join(f"    {literal(k)} = {literal(v)}" for k, v in options.items())
    return f"CREATE TABLE {quote(name)} (\n{body}\n) WITH (\n{with_}\n)"


def table_names(app: str) -> tuple[str, str, str]:
    """(source, events view, sink) table names of an app."""
    base = app.replace("-", "_").replace(".", "_")
    return f"{base}_source", f"{base}_events", f"{base}_sink"


def compile_flink_sql(spec: AppSpec, *, bootstrap_servers: str, checkpoint_interval_s: float = 10.0,
                      field_types_override: Mapping[str, str] | None = None) -> FlinkScript:  # fmt: skip
    """Compile `spec` to a Flink SQL script; FlinkUnsupported names what Flink SQL cannot express."""
    from stream_apps.flink_kda import compile_program_query
    from stream_apps.flink_windows import compile_query

    group = f"tidelake-flink-{spec.name}"
    source, events, sink = table_names(spec.name)
    check_ms(spec.name, "allowed_lateness", spec.allowed_lateness_us, f"{spec.allowed_lateness_us}us")
    if spec.program is not None:
        query = compile_program_query(spec, source=source, events=events, sink=sink)
    else:
        query = compile_query(spec, source=source, events=events, sink=sink,
                              types=field_types(spec, field_types_override))  # fmt: skip
    interval_ms = max(1, round(checkpoint_interval_s * 1000))
    settings = {
        "table.local-time-zone": "UTC",
        "execution.checkpointing.interval": f"{interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "pipeline.name": f"tidelake-{spec.name}",
    }
    statements = [f"SET {literal(k)} = {literal(v)}" for k, v in settings.items()]
    statements.append(source_table(spec, source, query.source_columns, bootstrap_servers=bootstrap_servers,
                                   group=group))  # fmt: skip
    statements.append(sink_table(spec, sink, query.sink_columns, bootstrap_servers=bootstrap_servers,
                                 prefix=group))  # fmt: skip
    statements.extend(query.views)
    statements.append(query.insert)
    return FlinkScript(
        app=spec.name,
        source_topic=spec.source,
        sink_topic=spec.sink_topic,
        source_group=group,
        transactional_id_prefix=group,
        statements=tuple(statements),
    )


__all__ = ["FlinkScript", "FlinkUnsupported", "compile_flink_sql"]
