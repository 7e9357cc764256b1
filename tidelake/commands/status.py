"""`tidelake status`: topics, Kinesis streams, consumer lag, processes and the lake at a glance."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings
from core.status_board import RECENT_S, RUNNING
from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    LakeOption,
    console,
    print_json,
    settings_from,
)
from tidelake.stack import Stack
from tidelake.status import PipelineStatus, collect_status

#: The environment variables that name Kafka and the lake (they win over the running stack's).
KAFKA_ENV = f"{ENV_PREFIX}KAFKA{ENV_NESTED_DELIMITER}BOOTSTRAP_SERVERS"
LAKE_ENV = f"{ENV_PREFIX}LAKE{ENV_NESTED_DELIMITER}ROOT"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def render(status: PipelineStatus) -> None:
    info = status.to_dict()
    head = "up" if status.broker_up else "[red]not reachable[/]"
    console.print(
        f"Kafka at {status.bootstrap_servers}: {head}   lake: {status.lake}\n"
        f"events in {info['events_in']:,} · rejected {info['rejected']:,} · windows closed "
        f"{info['windows_closed']:,} · late events {info['late_events']:,} · lake files {info['lake_files']:,} "
        f"({_size(info['lake_bytes'])})"
    )
    if status.note:
        console.print(f"[yellow]{status.note}[/]")
    topics = Table(
        "topic", "partitions", "end offsets", "records", title="topics (streams)", title_justify="left"
    )
    for t in status.topics:
        topics.add_row(t.name, str(t.partitions), " ".join(map(str, t.end_offsets)), f"{t.records:,}")
    groups = Table(
        "consumer group", "lag (records)", "ms behind latest", title="consumers", title_justify="left"
    )
    for g in status.groups:
        groups.add_row(g.group, f"{g.lag:,}", f"{g.millis_behind_latest:,}")
    processes = Table("kind", "name", "state", "counters", "updated", title="processes", title_justify="left")
    for p in status.processes:
        counters = ", ".join(f"{k}={v}" for k, v in p.metrics.items() if isinstance(v, int | float))
        updated = dt.datetime.fromtimestamp(p.updated_at).strftime("%H:%M:%S")
        state = str(p.metrics.get("state", RUNNING)) if p.alive_at(status.taken_at) else "stopped"
        processes.add_row(p.kind, p.name, state, counters, updated)
    lake = Table("dataset", "files", "rows", "bytes", title="lake datasets (tables)", title_justify="left")
    for d in status.datasets:
        lake.add_row(d.name, f"{d.files:,}", f"{d.rows:,}", _size(d.bytes))
    kinesis = Table(
        "stream",
        "mode",
        "shards",
        "records",
        "created",
        title="Kinesis streams (made by CreateStream)",
        title_justify="left",
    )
    for k in status.kinesis_streams:
        kinesis.add_row(
            k.name,
            k.mode,
            "?" if k.shards is None else str(k.shards),
            "?" if k.records is None else f"{k.records:,}",
            dt.datetime.fromtimestamp(k.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    for table in (topics, kinesis, groups, processes, lake):
        if table.row_count:
            console.print(table)
    if status.hidden_processes:
        console.print(
            f"{status.hidden_processes:,} processes stopped more than {RECENT_S / 60:.0f} min ago "
            "are not shown (--all lists them)"
        )


def of_running_stack(settings: Settings, *, bootstrap_given: bool, lake_given: bool) -> Settings:
    """The Kafka and lake of the stack `tidelake up`/`demo` runs from this state folder, where
    neither a flag nor the environment names them: `tidelake status` then describes what runs,
    e.g. a demo started with `--broker-port` and `--lake`. Unchanged when no stack process runs."""
    record = Stack(settings, broker_configured=True).load()
    if record is None or not any(p.alive for p in record.processes):
        return settings
    kafka, lake = settings.kafka, settings.lake
    if not bootstrap_given and KAFKA_ENV not in os.environ:
        kafka = kafka.model_copy(update={"bootstrap_servers": record.bootstrap_servers})
    if not lake_given and LAKE_ENV not in os.environ:
        lake = lake.model_copy(update={"root": Path(record.lake)})
    return settings.model_copy(update={"kafka": kafka, "lake": lake})


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_command(
        bootstrap_servers: BootstrapOption = None,
        lake: LakeOption = None,
        json_out: JsonOption = False,
        all_processes: Annotated[
            bool,
            typer.Option(
                "--all",
                help=f"List every process on the status board, also those stopped more than "
                f"{RECENT_S / 60:.0f} minutes ago (entries older than a day are deleted).",
            ),
        ] = False,
    ) -> None:
        """The pipeline at a glance: topics and offsets, Kinesis streams made by the API's CreateStream,
        consumer lag (records and ms behind latest), stream apps and delivery streams (running, or
        stopped in the last 10 minutes), and lake datasets. A process is running while it beats on the status board, from any host or
        container that shares the state folder. Exit 1 when Kafka does not answer."""
        settings = settings_from(bootstrap_servers=bootstrap_servers, lake=lake)
        settings = of_running_stack(
            settings, bootstrap_given=bootstrap_servers is not None, lake_given=lake is not None
        )
        status = collect_status(settings, all_processes=all_processes)
        if json_out:
            print_json(status.to_dict())
        else:
            render(status)
        if not status.broker_up:
            raise typer.Exit(1)
