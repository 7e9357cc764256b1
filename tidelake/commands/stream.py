"""The `tidelake stream` commands: list and run stream apps (the Kinesis Data Analytics stand-in)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.errors import ConfigError
from core.events import EVENT_TIME_FIELD
from core.status_board import StatusPublisher
from core.topics import ANALYTICS_PREFIX, CLICKSTREAM_EVENTS
from stream_apps.catalog import resolve_spec, resolve_sql, shipped_specs, shipped_sql
from stream_apps.kda_sql.apps import parse_outputs, sql_app_spec
from stream_apps.kda_sql.inputs import load_input_schema
from stream_apps.kda_sql.program import load_program
from stream_apps.spec import AppSpec, spec_from_mapping, spec_to_mapping
from stream_apps.worker import Progress, StreamWorker, WorkerOptions
from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    console,
    err_console,
    print_json,
    settings_from,
)

app = typer.Typer(
    help="Stream apps: windowed aggregates over a topic, like Kinesis Data Analytics.", no_args_is_help=True
)


class Runtime(StrEnum):
    """What hosts the windowing engine (`--runtime`)."""

    aiokafka = "aiokafka"
    faust = "faust"
    flink = "flink"


def register(root: typer.Typer) -> None:
    """Add `tidelake stream list|run|explain` to the root `tidelake` app."""
    root.add_typer(app, name="stream")


@app.command("list")
def list_apps(json_output: JsonOption = False) -> None:
    """List the shipped stream apps with their window, key, aggregates and output topic."""
    specs = shipped_specs()
    programs = shipped_sql()
    if json_output:
        print_json(
            {
                "apps": [spec_to_mapping(s) for s in specs.values()],
                "sql_apps": [{"name": name, "sql": str(path)} for name, path in programs.items()],
            }
        )
        return
    table = Table(
        "app", "window", "key", "aggregates", "filters", caption="each app writes to analytics.<app>"
    )
    for column in (table.columns[0], table.columns[1], table.columns[3]):
        column.no_wrap = True
    for spec in specs.values():
        table.add_row(
            spec.name,
            spec.window.spelling,
            spec.key_field or "-",
            "\n".join(a.spelling for a in spec.aggregates),
            ", ".join(c.spelling for c in spec.filters) or "-",
        )
    console.print(table)
    if programs:
        sql_table = Table(
            "app",
            "KDA SQL program",
            "window",
            "keys",
            "output",
            caption="tidelake stream run --sql NAME|FILE",
        )
        for name, path in programs.items():
            program = load_program(path)
            grouped = program.grouped
            window = "per row" if grouped is None or grouped.window is None else (
                f"{grouped.window[0]}:{grouped.window[1] // 1_000_000}s"
            )  # fmt: skip
            keys = ", ".join(k for k, _ in grouped.keys) if grouped is not None and grouped.keys else "-"
            sql_table.add_row(name, path.name, window, keys, program.output.name)
        console.print(sql_table)


@app.command("explain")
def explain(
    program_file: Annotated[
        str, typer.Argument(metavar="APP.sql", help="A KDA SQL program, or a shipped one's name.")
    ],
    time_field: Annotated[
        str | None,
        typer.Option(
            "--time-field",
            metavar="FIELD",
            help="Event-time field read as ROWTIME.",
            show_default="event_time",
        ),
    ] = None,
    input_schema: Annotated[
        Path | None,
        typer.Option(
            "--input-schema", metavar="FILE", help="KDA RecordColumns JSON: Name, SqlType, Mapping."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Print the plan of a Kinesis Data Analytics SQL program: windows, keys, aggregates, outputs.

    Refuses what is outside the supported subset with its line and column (docs/kda-sql.md).
    """
    columns = load_input_schema(input_schema) if input_schema is not None else ()
    program = load_program(resolve_sql(program_file), time_field, columns)
    if json_output:
        grouped = program.grouped
        print_json(
            {
                "pumps": [p.statement.name for p in program.pumps],
                "window": None if grouped is None or grouped.window is None else
                {"kind": grouped.window[0], "size_s": grouped.window[1] / 1_000_000},
                "keys": [] if grouped is None else [k for k, _ in grouped.keys],
                "aggregates": [] if grouped is None else [a.sql for a in grouped.aggregates],
                "output": {"stream": program.output.name, "columns": [c.name for c in program.output.columns]},
            }
        )  # fmt: skip
        return
    for line in program.explain():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _adhoc_spec(
    *, name: str | None, source: str, key_field: str | None, time_field: str, window: str | None,
    aggs: list[str], filters: list[str], allowed_lateness: str | None, idle_timeout: str | None,
    emit: str, sink_topic: str | None,
) -> AppSpec:  # fmt: skip
    if not window or not aggs or not sink_topic:
        msg = (
            "give an app NAME or SPEC file, or ad hoc at least --window, --agg and --sink-topic (see --help)"
        )
        raise ConfigError(msg)
    if name is None:
        name = sink_topic.removeprefix(ANALYTICS_PREFIX).lower().replace("/", "-")
    data: dict[str, Any] = {
        "name": name,
        "source": source,
        "key_field": key_field,
        "time_field": time_field,
        "window": window,
        "aggregates": aggs,
        "filters": filters,
        "emit": emit,
        "sink_topic": sink_topic,
        "allowed_lateness": allowed_lateness,
        "idle_timeout": idle_timeout,
    }
    return spec_from_mapping(data, "flags")


def _status(progress: Progress) -> Text:
    mark = progress.watermark.replace(".000000Z", "Z")
    return Text.assemble(
        (progress.app, "bold"),
        f"  in {progress.events_in:,} · windowed {progress.windowed:,} · filtered {progress.filtered:,}"
        f" · open {progress.windows_open:,} · closed {progress.windows_closed:,} · late {progress.late:,}"
        f" · errors {progress.errors:,} · watermark {mark}",
        no_wrap=True,
        overflow="ellipsis",
    )


def _summary(progress: Progress) -> Table:
    table = Table(title=f"stream app {progress.app}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("events in", progress.events_in),
        ("windowed", progress.windowed),
        ("filtered out", progress.filtered),
        ("late (to analytics.late-events)", progress.late),
        ("bad records (to the DLQ)", progress.errors),
        ("windows closed (final rows)", progress.windows_closed),
        ("rows written", progress.rows_out),
        ("windows still open (in the snapshot)", progress.windows_open),
    ]
    for what, value in rows:
        table.add_row(what, f"{value:,}")
    table.add_row("watermark", progress.watermark)
    table.add_row("run time", f"{progress.elapsed_s:,.1f} s")
    return table


def _flink_worker(spec: AppSpec, options: WorkerOptions, rest_url: str | None, parallelism: int | None,
                  on_progress: Callable[[Progress], None]) -> StreamWorker:  # fmt: skip
    """The Flink runtime's worker; ConfigError (run `tidelake flink fetch`) when it is not installed,
    FlinkUnsupported (a ConfigError) when Flink SQL cannot express the app."""
    from stream_apps.flink_runtime import FlinkOptions, FlinkWorker, rest_address
    from stream_apps.flink_sql import compile_flink_sql
    from tidelake.flink_install import installed

    compile_flink_sql(spec, bootstrap_servers=options.bootstrap_servers)  # refuse before anything starts
    if rest_url is not None:
        rest_address(rest_url)
    install = installed()
    flink = FlinkOptions(install.python, install.connector_jar, parallelism=parallelism, rest_url=rest_url)
    return FlinkWorker(spec, options, flink, on_progress=on_progress)


@app.command("run")
def run(
    app_or_spec: Annotated[
        str | None,
        typer.Argument(metavar="NAME|SPEC", help="A shipped app (`tidelake stream list`) or a TOML spec."),
    ] = None,
    sql: Annotated[
        str | None,
        typer.Option(
            "--sql",
            metavar="APP.sql",
            help="Run a Kinesis Data Analytics SQL program (or a shipped one by name): SOURCE_SQL_STREAM_001 "
            "reads --source, DESTINATION_SQL_STREAM goes to --sink-topic.",
        ),
    ] = None,
    outputs: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            metavar="STREAM=TOPIC",
            help="With --sql: write an output stream other than DESTINATION_SQL_STREAM.",
        ),
    ] = None,
    input_schema: Annotated[
        Path | None,
        typer.Option(
            "--input-schema",
            metavar="FILE",
            help="With --sql: KDA RecordColumns JSON (Name, SqlType, Mapping); records that do not fit go to the DLQ.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="TOPIC",
            help="Ad hoc or --sql: topic to read.",
            show_default=CLICKSTREAM_EVENTS,
        ),
    ] = None,
    key_field: Annotated[
        str | None,
        typer.Option(
            "--key-field",
            metavar="FIELD",
            help="Ad hoc: group by this field.",
            show_default="none: one row per window over all events",
        ),
    ] = None,
    time_field: Annotated[
        str | None,
        typer.Option(
            "--time-field",
            metavar="FIELD",
            help="Ad hoc or --sql: event-time field (ROWTIME).",
            show_default=EVENT_TIME_FIELD,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            metavar="WINDOW",
            help="Ad hoc: tumbling:60s | hopping:300s/60s | sliding:60s | session:30m | stagger:60s.",
        ),
    ] = None,
    agg: Annotated[
        list[str] | None,
        typer.Option(
            "--agg",
            metavar="AGG",
            help="Ad hoc, repeatable: count, count_distinct:F, sum:F, min:F, max:F, avg:F, top:N:F, "
            "first:F, last:F, duration.",
        ),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", metavar="CONDITION", help="Ad hoc, repeatable: FIELD OP VALUE, e.g. 'is_bot = false'."
        ),
    ] = None,
    allowed_lateness: Annotated[
        str | None,
        typer.Option(
            "--allowed-lateness",
            metavar="DURATION",
            help="Ad hoc: watermark delay, e.g. 5s.",
            show_default="0s",
        ),
    ] = None,
    idle_timeout: Annotated[
        str | None,
        typer.Option(
            "--idle-timeout",
            metavar="DURATION",
            help="Ad hoc: close windows after this long without events, e.g. 2s.",
            show_default="10s",
        ),
    ] = None,
    emit: Annotated[
        str,
        typer.Option(
            "--emit", metavar="final|changes", help="Ad hoc: final (one row per window) or changes."
        ),
    ] = "final",
    sink_topic: Annotated[
        str | None, typer.Option("--sink-topic", metavar="TOPIC", help="Ad hoc (required): output topic.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Ad hoc: app name (state folder, consumer group).",
            show_default="the --sink-topic without analytics.",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            metavar="DIR",
            help="Folder of app state. Env: TIDELAKE_STREAM__STATE_DIR.",
            show_default="~/.local/share/tidelake/stream",
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Forget saved state; read the source from the start.")
    ] = False,
    stop_after: Annotated[
        int | None,
        typer.Option(
            "--stop-after", metavar="N", help="Stop after reading this many events (tests, benchmarks)."
        ),
    ] = None,
    runtime: Annotated[
        Runtime,
        typer.Option(
            "--runtime",
            case_sensitive=False,
            help="aiokafka: our own micro-batch consumer loop (fast, the default). faust: the same "
            "windows hosted in a Faust app (agent, timer, Faust topics); slower, same rows. flink: the "
            "app compiled to Flink SQL and run by Apache Flink, Amazon Managed Service for Apache "
            "Flink's engine, on PyFlink's local mini-cluster (`tidelake flink fetch` installs it).",
        ),
    ] = Runtime.aiokafka,
    flink_rest: Annotated[
        str | None,
        typer.Option(
            "--flink-rest",
            metavar="URL",
            help="With --runtime flink: submit the job to the Flink cluster at this REST endpoint "
            "(http://HOST:8081) and return, instead of running it here.",
        ),
    ] = None,
    parallelism: Annotated[
        int | None,
        typer.Option(
            "--parallelism",
            metavar="N",
            min=1,
            help="With --runtime flink: the job's parallelism (Flink subtasks).",
            show_default="one per source partition",
        ),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a stream app until Ctrl-C: windows over the source topic, rows to analytics.<app>.

    A shipped app or TOML spec by NAME|SPEC, an ad hoc app from flags, or a Kinesis Data Analytics
    SQL program with --sql APP.sql (docs/kda-sql.md).

    Shows events in, windows open/closed and late events while it runs, and a summary at the end.
    """
    if sql is not None:
        if app_or_spec is not None or window or agg or filters or key_field:
            msg = "--sql runs a KDA SQL program: give no NAME|SPEC, --window, --agg, --filter or --key-field with it"
            raise ConfigError(msg)
        spec = sql_app_spec(
            resolve_sql(sql), source=source, sink_topic=sink_topic, outputs=parse_outputs(outputs or []),
            input_schema=input_schema, time_field=time_field, allowed_lateness=allowed_lateness,
            idle_timeout=idle_timeout, name=name,
        )  # fmt: skip
    elif outputs or input_schema is not None:
        msg = "--output and --input-schema go with --sql APP.sql"
        raise ConfigError(msg)
    elif app_or_spec is not None:
        spec = resolve_spec(app_or_spec)
    else:
        spec = _adhoc_spec(
            name=name, source=source or CLICKSTREAM_EVENTS, key_field=key_field,
            time_field=time_field or EVENT_TIME_FIELD, window=window, aggs=agg or [],
            filters=filters or [], allowed_lateness=allowed_lateness, idle_timeout=idle_timeout, emit=emit,
            sink_topic=sink_topic,
        )  # fmt: skip
    stream_section = {"state_dir": state_dir} if state_dir is not None else {}
    settings = settings_from(bootstrap_servers=bootstrap_servers, stream=stream_section)
    options = WorkerOptions(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        state_dir=settings.stream.state_dir,
        tick_s=settings.stream.tick_s,
        checkpoint_interval_s=settings.stream.checkpoint_interval_s,
        reset=reset,
        stop_after_events=stop_after,
    )
    if not json_output:
        err_console.print(
            f"[bold]{spec.name}[/]: {spec.describe()}; state in {options.state_dir / spec.name}; "
            f"runtime {runtime.value}"
        )
    live = Live(console=console, auto_refresh=False, transient=False) if not json_output else None
    board = StatusPublisher(settings.runtime.state_dir, "stream", spec.name)

    def on_progress(progress: Progress) -> None:
        board.publish(progress.as_dict())
        if live is not None:
            live.update(_status(progress), refresh=True)

    if (flink_rest is not None or parallelism is not None) and runtime is not Runtime.flink:
        msg = "--flink-rest and --parallelism go with --runtime flink"
        raise ConfigError(msg)
    if runtime is Runtime.faust:
        from stream_apps.faust_runtime import FaustWorker  # Faust is slow to import: only when asked

        worker: StreamWorker = FaustWorker(spec, options, on_progress=on_progress)
    elif runtime is Runtime.flink:
        worker = _flink_worker(spec, options, flink_rest, parallelism, on_progress)
    else:
        worker = StreamWorker(spec, options, on_progress=on_progress)

    async def main() -> Progress:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop)
        try:
            return await worker.run()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    if live is not None:
        with live:
            final = asyncio.run(main())
            board.publish(final.as_dict(), force=True)
            live.update(_status(final), refresh=True)
        console.line()
        console.print(_summary(final))
    else:
        final = asyncio.run(main())
        board.publish(final.as_dict(), force=True)
        print_json(final.as_dict())
