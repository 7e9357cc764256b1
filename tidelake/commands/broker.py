"""`tidelake broker start|stop|status|run`: the local Kafka broker (the Kinesis stand-in)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.settings import BrokerSettings
from tidelake.broker import LocalBroker
from tidelake.commands.options import JsonOption, console, print_json, settings_from
from tidelake.kafka_jars import check_java, ensure_jars

app = typer.Typer(
    help="Run a real single-node Apache Kafka (KRaft) on 127.0.0.1 from Kafka's Maven Central jars.",
    no_args_is_help=True,
)

PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        metavar="PORT",
        help="PLAINTEXT port on 127.0.0.1; the KRaft controller takes the next one. Env: TIDELAKE_BROKER__PORT.",
        show_default="9092",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Where the broker keeps its log, state and data. Env: TIDELAKE_BROKER__DATA_DIR.",
        show_default="~/.local/share/tidelake/broker",
    ),
]


def _broker(port: int | None, data_dir: Path | None) -> LocalBroker:
    overrides: dict = {}
    if port is not None:
        overrides["port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return LocalBroker(settings_from(broker=overrides).broker)


def _command(verb: str, broker: LocalBroker) -> str:
    """`tidelake broker VERB` with the --port and --data-dir that find this broker again (the
    state lives in its data dir; a non-default port matters to start)."""
    defaults = BrokerSettings()
    words = ["tidelake", "broker", verb]
    if verb == "start" and broker.settings.port != defaults.port:
        words += ["--port", str(broker.settings.port)]
    if broker.settings.data_dir != defaults.data_dir:
        words += ["--data-dir", shlex.quote(str(broker.settings.data_dir))]
    return " ".join(words)


@app.command()
def start(port: PortOption = None, data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:
    """Start the broker in the background; return when clients can use it."""
    broker = _broker(port, data_dir)
    already = broker.running_state()
    if already is None and not json_out:
        with console.status(
            f"starting Kafka {broker.settings.kafka_version} on 127.0.0.1:{broker.settings.port} ..."
        ):
            state = broker.start()
    else:
        state = already or broker.start()
    if json_out:
        print_json(broker.status(with_topics=False).to_dict() | {"already_running": already is not None})
        return
    if already is not None:
        console.print(
            f"Kafka {state.kafka_version} is already running at {state.bootstrap_servers} (pid {state.pid})."
        )
        return
    console.print(
        f"Kafka {state.kafka_version} is ready at [bold]{state.bootstrap_servers}[/] "
        f"(pid {state.pid}, ready in {state.ready_after_s:.1f} s).\n"
        f"  data: {broker.data_dir}\n  log:  {broker.log_file}\n"
        f"Stop it with `{_command('stop', broker)}`."
    )


@app.command()
def stop(port: PortOption = None, data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:
    """Stop the broker started on this data dir (a clean shutdown; data is kept)."""
    broker = _broker(port, data_dir)
    began = time.monotonic()
    state = broker.stop()
    if json_out:
        print_json({"stopped": state is not None, "pid": state.pid if state else None})
    elif state is None:
        console.print(f"No tidelake broker is running on {broker.data_dir}.")
    else:
        console.print(
            f"Stopped Kafka (pid {state.pid}) in {time.monotonic() - began:.1f} s; data kept in {broker.data_dir}."
        )


@app.command()
def status(port: PortOption = None, data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:
    """Show version, address, PID, uptime and topics of the local broker. Exit 1 when it is not running."""
    broker = _broker(port, data_dir)
    report = broker.status()
    if json_out:
        print_json(report.to_dict())
    elif not report.running:
        console.print(
            f"No tidelake broker is running on {broker.data_dir}. Start one with `{_command('start', broker)}`."
        )
    else:
        info = report.to_dict()
        console.print(
            f"Kafka {info['kafka_version']} running at [bold]{info['bootstrap_servers']}[/]\n"
            f"  pid {info['pid']}, up {info['uptime_s']:.0f} s, data {info['data_dir']}"
        )
        table = Table("topic", "partitions", "records", title="topics")
        for topic in report.topics or []:
            table.add_row(topic["name"], str(topic["partitions"]), str(topic["records"]))
        console.print(table if report.topics else "  no topics yet")
    if not report.running:
        raise typer.Exit(1)


@app.command()
def fetch(json_out: JsonOption = False) -> None:
    """Fetch Kafka's jars from Maven Central into the user cache now (start does it on first use)."""
    settings = settings_from().broker
    check_java()
    with console.status(f"fetching Kafka {settings.kafka_version} jars with Maven ..."):
        folder = ensure_jars(settings)
    jars = sorted(folder.glob("*.jar"))
    if json_out:
        print_json({"jars_dir": str(folder), "jars": len(jars), "kafka_version": settings.kafka_version})
    else:
        console.print(f"Kafka {settings.kafka_version}: {len(jars)} jars in {folder}")


@app.command()
def run(port: PortOption = None, data_dir: DataDirOption = None) -> None:
    """Run the broker in the foreground until Ctrl-C (for containers and process managers)."""
    broker = _broker(port, data_dir)
    console.print(
        f"Kafka {broker.settings.kafka_version} starting on 127.0.0.1:{broker.settings.port}; Ctrl-C stops it."
    )
    broker.run()
    console.print("Kafka stopped.")
