"""The `tidelake sink` commands: run a delivery stream (Firehose), list the shipped ones, compact."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from core.errors import ConfigError
from core.status_board import RUNNING, STOPPED, StatusPublisher
from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    LakeOption,
    console,
    err_console,
    print_json,
    settings_from,
)

app = typer.Typer(
    help="Delivery streams: Kafka topics -> Parquet in the lake (like Firehose -> S3).", no_args_is_help=True
)


@app.command("run")
def run(
    name: Annotated[
        str | None, typer.Argument(help="A shipped delivery stream (see `tidelake sink list`).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A delivery-stream config file (TOML).")
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Ad hoc: topic to read (repeatable).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Ad hoc: dataset (folder) in the lake.")
    ] = None,
    schema: Annotated[str, typer.Option("--schema", help="Ad hoc: clickstream or infer.")] = "infer",
    time_field: Annotated[str, typer.Option("--time-field", help="Ad hoc: event-time field.")] = "event_time",
    time_source: Annotated[str, typer.Option("--time-source", help="Ad hoc: event or arrival.")] = "event",
    buffer_seconds: Annotated[
        float | None, typer.Option("--buffer-seconds", help="Flush interval (IntervalInSeconds).")
    ] = None,
    buffer_mb: Annotated[
        float | None, typer.Option("--buffer-mb", help="Flush size in MiB (SizeInMBs).")
    ] = None,
    buffer_records: Annotated[
        int | None, typer.Option("--buffer-records", help="Flush after this many records.")
    ] = None,
    partition_by: Annotated[
        str | None,
        typer.Option("--partition-by", help="Prefix template, e.g. 'dt=!{timestamp:yyyy-MM-dd}/'."),
    ] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="pyarrow or fastparquet.")] = None,
    compression: Annotated[
        str | None, typer.Option("--compression", help="snappy, zstd, gzip or none.")
    ] = None,
    group_id: Annotated[
        str | None,
        typer.Option(
            "--group-id",
            help="Consumer group. The dataset belongs to the first name and group that write it; "
            "another group is refused (give it its own --dataset or --lake).",
            show_default="tidelake-sink-NAME",
        ),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option("--instance-id", help="Static group membership: restart without a rebalance wait."),
    ] = None,
    max_idle: Annotated[
        float | None,
        typer.Option(
            "--max-idle",
            help="Stop after this many seconds without a new record (counted from the start, and from when "
            "partitions are assigned): what is "
            "buffered is delivered at once, without waiting for the buffering interval.",
            show_default="run until Ctrl-C",
        ),
    ] = None,
    max_outage: Annotated[
        float,
        typer.Option(
            "--max-outage",
            help="Ride out a Kafka outage this long (seconds), retrying the commit, before giving up.",
        ),
    ] = 120.0,
    bootstrap_servers: BootstrapOption = None,
    lake: LakeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run a delivery stream until Ctrl-C (or --max-idle): buffer, convert, write Parquet, commit."""
    from sinks.config import load_config_file, load_shipped, parse_config
    from sinks.stream import DeliveryStream

    chosen = sum(x is not None and x != [] for x in (name, config, topic))
    if chosen != 1:
        raise ConfigError(
            "give exactly one of NAME, --config FILE or --topic T (ad hoc); see `tidelake sink list`"
        )
    if name is not None:
        stream_config = load_shipped(name)
    elif config is not None:
        stream_config = load_config_file(config)
    else:
        from core.lake import dataset_for_topic

        data: dict[str, Any] = {
            "name": (dataset or dataset_for_topic((topic or [""])[0])).replace("_", "-"),
            "topics": list(topic or []),
            "dataset": dataset,
            "schema": schema,
            "time_field": time_field,
            "time_source": time_source,
        }
        stream_config = parse_config(data, "the command line")
    overrides = _overrides(
        buffer_seconds, buffer_mb, buffer_records, partition_by, engine, compression, group_id
    )
    if overrides:
        merged = stream_config.model_dump(by_alias=True)
        for section, values in overrides.items():
            if isinstance(values, dict):
                merged[section].update(values)
            else:
                merged[section] = values
        stream_config = parse_config(merged, "the command line")
    settings = settings_from(bootstrap_servers=bootstrap_servers, lake=lake)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Live(console=err_console, transient=True, refresh_per_second=4, redirect_stdout=False) as live:
            board = StatusPublisher(settings.runtime.state_dir, "sink", stream_config.name)

            def progress(summary: Any) -> None:
                board.publish(summary.as_dict())  # for `tidelake status`
                if not json_out:
                    live.update(_progress_line(summary))

            stream = DeliveryStream(stream_config, settings, on_progress=progress)
            stream.claim_known_datasets()  # a dataset of another delivery stream: refused before anything
            if not json_out:
                err_console.print(
                    f"delivery stream [bold]{stream_config.name}[/]: {stream_config.topics or stream_config.topic_pattern} "
                    f"-> {settings.lake.root}/{stream_config.dataset or '<dataset of topic>'} (Ctrl-C to stop)",
                    markup=True,
                )
            summary = stream.run(stop_event=stop, max_idle_s=max_idle, max_outage_s=max_outage)
            board.publish(summary.as_dict(), force=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if json_out:
        print_json(summary.as_dict())
    else:
        _print_summary(summary.as_dict())


def _overrides(
    seconds: float | None,
    mb: float | None,
    records: int | None,
    prefix: str | None,
    engine: str | None,
    compression: str | None,
    group_id: str | None,
) -> dict[str, Any]:
    buffer = {
        k: v for k, v in (("interval_s", seconds), ("size_mb", mb), ("records", records)) if v is not None
    }
    parquet = {k: v for k, v in (("engine", engine), ("compression", compression)) if v is not None}
    out: dict[str, Any] = {}
    if buffer:
        out["buffer"] = buffer
    if parquet:
        out["parquet"] = parquet
    if prefix is not None:
        out["prefix"] = prefix
    if group_id is not None:
        out["group_id"] = group_id
    return out


def _progress_line(summary: Any) -> str:
    state = "" if summary.state == "running" else f"[yellow]{summary.state}[/]  "
    return (
        f"{state}in {summary.records_in:,}  written {summary.rows_written:,}  errors {summary.error_count:,}  "
        f"dropped {summary.dropped:,}  files {summary.files:,}  behind {summary.millis_behind_latest:,} ms"
    )


def _print_summary(data: dict[str, Any]) -> None:
    table = Table("delivery stream", data["delivery_stream"], show_header=True)
    for label, key in (
        ("records in", "records_in"),
        ("rows written", "rows_written"),
        ("errors", "errors"),
        ("dropped by transform", "dropped"),
        ("still buffered", "buffered"),
        ("files", "files"),
        ("bytes", "bytes"),
        ("millis behind latest", "millis_behind_latest"),
        ("records/s", "records_per_s"),
    ):
        table.add_row(label, f"{data[key]:,}" if isinstance(data[key], int) else str(data[key]))
    table.add_row("errors by type", ", ".join(f"{k}: {v}" for k, v in data["errors_by_type"].items()) or "-")
    table.add_row("flushes", ", ".join(f"{k}: {v}" for k, v in data["flushes"].items()) or "-")
    table.add_row("in = written + errors + dropped", "yes" if data["reconciles"] else "NO")
    console.print(table)


@app.command("list")
def list_streams(json_out: JsonOption = False) -> None:
    """The shipped delivery streams and what they read and write."""
    from sinks.config import load_shipped, shipped_names

    rows: list[dict[str, Any]] = []
    for stream_name in shipped_names():
        cfg = load_shipped(stream_name)
        rows.append(
            {
                "name": stream_name,
                "reads": ", ".join(cfg.topics) or cfg.topic_pattern,
                "dataset": cfg.dataset or "(from topic)",
                "mode": cfg.mode,
                "interval_s": cfg.buffer.interval_s,
            }
        )
    if json_out:
        print_json({"delivery_streams": rows})
        return
    table = Table("name", "reads", "dataset", "mode", "interval s")
    for row in rows:
        table.add_row(row["name"], str(row["reads"]), row["dataset"], row["mode"], str(row["interval_s"]))
    console.print(table)


@app.command("compact")
def compact_dataset(
    datasets: Annotated[
        list[str] | None, typer.Argument(help="Datasets (folders under the lake) to compact.")
    ] = None,
    all_datasets: Annotated[
        bool,
        typer.Option("--all", help="Every dataset of the lake (with --watch, also those that appear later)."),
    ] = False,
    partition: Annotated[
        list[str] | None,
        typer.Option("--partition", help="Only folders under this, e.g. dt=2019-01-22 (repeatable)."),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep running: every --interval seconds, compact the partitions that are closed "
            "(hour over by --lateness, no new file for --quiet); Ctrl-C stops.",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=1, help="With --watch: seconds between two rounds.")
    ] = 60.0,
    lateness: Annotated[
        float,
        typer.Option(
            "--lateness",
            min=0,
            help="With --watch: seconds after its hour ends (event time) before a partition may close.",
        ),
    ] = 900.0,
    quiet: Annotated[
        float,
        typer.Option(
            "--quiet", min=0, help="With --watch: seconds without a new file before a partition may close."
        ),
    ] = 120.0,
    compression: Annotated[str, typer.Option("--compression", help="snappy, zstd, gzip or none.")] = "snappy",
    lake: LakeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Merge the small files of each partition into one, swapping folders atomically for readers."""
    from core.lake import check_dataset_name
    from sinks.compaction import compact
    from sinks.compactor import lake_datasets
    from sinks.writer import COMPRESSIONS

    if all_datasets == bool(datasets):
        raise ConfigError("give the datasets to compact, or --all (see `tidelake catalog`)")
    for dataset in datasets or []:
        try:
            check_dataset_name(dataset)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if compression not in COMPRESSIONS:
        raise ConfigError(f"--compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    settings = settings_from(lake=lake)
    if watch:
        if partition:
            raise ConfigError(
                "--partition is for a one-off compaction; --watch chooses the closed partitions"
            )
        _watch_compaction(settings, datasets or None, interval, lateness, quiet, compression, json_out)
        return
    chosen = datasets or lake_datasets(settings.lake.root)
    done = [
        (d, c) for d in chosen for c in compact(settings.lake.root, d, partition, compression=compression)
    ]
    if json_out:
        print_json({"partitions": [{"dataset": d} | c.__dict__ for d, c in done]})
        return
    if not done:
        console.print(
            f"nothing to compact in {', '.join(chosen) or settings.lake.root} (no partition has two or more files)"
        )
        return
    table = Table("dataset", "partition", "files before", "files after", "rows", "bytes after")
    for d, c in done:
        table.add_row(
            d, c.partition, str(c.files_before), str(c.files_after), f"{c.rows:,}", f"{c.bytes_after:,}"
        )
    console.print(table)


def _watch_compaction(
    settings: Any,
    datasets: list[str] | None,
    interval_s: float,
    lateness_s: float,
    quiet_s: float,
    compression: str,
    json_out: bool,
) -> None:
    """`sink compact --watch`: a BackgroundCompactor in the foreground until Ctrl-C or SIGTERM."""
    import json

    from sinks.compactor import BackgroundCompactor, ClosedRule, Round

    board = StatusPublisher(settings.runtime.state_dir, "compactor", "compactor")
    totals = {"rounds": 0, "partitions_compacted": 0, "files_merged": 0, "open_partitions": 0, "failures": 0}
    board.publish({**totals, "state": RUNNING}, force=True)  # up: running before its first round ends

    def report(done: Round) -> None:
        totals["rounds"] += 1
        totals["partitions_compacted"] += len(done.compacted)
        totals["files_merged"] += sum(c.files_before for _, c in done.compacted)
        totals["open_partitions"] = done.open_partitions
        totals["failures"] += len(done.failed)
        board.publish({**totals, "state": RUNNING}, force=bool(done.compacted or done.failed))
        if json_out:
            for dataset, c in done.compacted:
                print(json.dumps({"dataset": dataset} | c.__dict__), flush=True)
            return
        for dataset, c in done.compacted:
            console.print(
                f"{dataset}/{c.partition}: {c.files_before} files -> {c.files_after} ({c.rows:,} rows, {c.bytes_after:,} bytes)"
            )
        for why in done.failed:
            err_console.print(f"[yellow]not compacted, tried again next round:[/] {why}", markup=True)

    compactor = BackgroundCompactor(
        settings.lake.root,
        datasets,
        interval_s=interval_s,
        rule=ClosedRule(lateness_s=lateness_s, quiet_s=quiet_s),
        compression=compression,
        on_round=report,
    )
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    if not json_out:
        err_console.print(
            f"compacting closed partitions of {', '.join(datasets) if datasets else 'every dataset'} in "
            f"{settings.lake.root} every {interval_s:g} s (Ctrl-C to stop)"
        )
    try:
        compactor.run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        board.publish({**totals, "state": STOPPED}, force=True)


def register(root: typer.Typer) -> None:
    """Add `tidelake sink ...` to the root app."""
    root.add_typer(app, name="sink")


__all__ = ["register"]
