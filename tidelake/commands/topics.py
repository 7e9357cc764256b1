"""`tidelake topics create|list`: topics are the Kinesis streams, partitions their shards."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.admin import create_topics, describe_topics
from core.topics import KINESIS_RETENTION_MS, TopicSpec
from tidelake.commands.options import BootstrapOption, JsonOption, console, print_json, settings_from

app = typer.Typer(
    help="Create and list topics (streams); partitions play the part of shards.", no_args_is_help=True
)


@app.command()
def create(
    name: Annotated[str, typer.Argument(metavar="TOPIC", help="Topic name, e.g. clickstream.events.")],
    partitions: Annotated[
        int, typer.Option("--partitions", "-p", metavar="N", min=1, help="Partitions (shards).")
    ] = 4,
    retention_hours: Annotated[
        float,
        typer.Option(
            "--retention-hours",
            metavar="HOURS",
            min=0.001,
            help="How long records are kept (retention.ms), like a Kinesis stream's retention period.",
        ),
    ] = KINESIS_RETENTION_MS / 3_600_000,
    bootstrap_servers: BootstrapOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a topic if it does not exist yet."""
    settings = settings_from(bootstrap_servers=bootstrap_servers)
    spec = TopicSpec(name, partitions, {"retention.ms": str(int(retention_hours * 3_600_000))})
    created = create_topics(settings.kafka.bootstrap_servers, [spec])
    (info,) = describe_topics(settings.kafka.bootstrap_servers, [name])
    if json_out:
        print_json({"topic": name, "created": bool(created), "partitions": info.partitions})
    elif created:
        console.print(
            f"Created topic {name} with {_partitions(info.partitions)} (retention {retention_hours:g} h)."
        )
    else:
        console.print(f"Topic {name} already exists with {_partitions(info.partitions)}; left as it is.")


def _partitions(count: int) -> str:
    return "1 partition" if count == 1 else f"{count} partitions"


@app.command()
def init(
    partitions: Annotated[
        int, typer.Option("--partitions", "-p", metavar="N", min=1, help="Partitions (shards).")
    ] = 4,
    bootstrap_servers: BootstrapOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create the topics every pipeline needs: clickstream.events, its DLQ, analytics.late-events and
    the shipped stream apps' output topics (analytics.<app>), as `tidelake up` does."""
    from tidelake.stack import stack_topics

    settings = settings_from(bootstrap_servers=bootstrap_servers)
    specs = stack_topics(partitions)
    created = create_topics(settings.kafka.bootstrap_servers, specs)
    if json_out:
        print_json({"created": created, "topics": [s.name for s in specs]})
        return
    for spec in specs:
        verb = "created" if spec.name in created else "exists "
        console.print(f"{verb} {spec.name}")


@app.command("list")
def list_(bootstrap_servers: BootstrapOption = None, json_out: JsonOption = False) -> None:
    """List topics with their partitions and records appended so far."""
    settings = settings_from(bootstrap_servers=bootstrap_servers)
    topics = describe_topics(settings.kafka.bootstrap_servers)
    if json_out:
        print_json(
            {"topics": [{"name": t.name, "partitions": t.partitions, "records": t.records} for t in topics]}
        )
        return
    table = Table("topic", "partitions", "records")
    for topic in topics:
        table.add_row(topic.name, str(topic.partitions), str(topic.records))
    console.print(table if topics else f"No topics yet at {settings.kafka.bootstrap_servers}.")
