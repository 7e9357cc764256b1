"""`tidelake up` and `tidelake down`: the whole pipeline in the background, like `docker compose up -d`."""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from core.errors import ConfigError
from core.settings import Settings
from tidelake.commands.options import (
    BootstrapOption,
    JsonOption,
    LakeOption,
    console,
    print_json,
    settings_from,
)
from tidelake.stack import DEFAULT_STREAM_RUNTIME, STREAM_RUNTIMES, Stack

#: `--runtime` of up and demo: what hosts the six stream apps.
StreamRuntime = StrEnum("StreamRuntime", {name: name for name in STREAM_RUNTIMES})  # type: ignore[misc]
DEFAULT_RUNTIME = StreamRuntime(DEFAULT_STREAM_RUNTIME)
StreamRuntimeOption = Annotated[
    StreamRuntime,
    typer.Option(
        "--runtime",
        case_sensitive=False,
        help="What hosts the stream apps (Kinesis Data Analytics): aiokafka, tidelake's own consumer "
        "loop, about 5x faster; faust, tidelake's windows in a Faust app each. Same rows either way.",
    ),
]

BrokerPortOption = Annotated[
    int | None,
    typer.Option(
        "--broker-port",
        min=1,
        max=65535,
        help="Port of the local Kafka broker it starts; its KRaft controller takes the next one. "
        "Env: TIDELAKE_BROKER__PORT.",
        show_default="9092",
    ),
]
ConsolePortOption = Annotated[
    int, typer.Option("--console-port", min=1, max=65535, help="Port of the Athena API and the web console.")
]


def stack_settings(
    bootstrap_servers: str | None, lake: Path | None, broker_port: int | None
) -> tuple[Settings, bool]:
    """Settings for up/demo, and whether a Kafka was configured (then no local broker is started)."""
    configured = bootstrap_servers is not None or "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS" in os.environ
    if configured and broker_port is not None:
        msg = "--broker-port is the port of the local broker tidelake starts; with a Kafka given by -b or TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, none is started"
        raise ConfigError(msg)
    broker = {"port": broker_port} if broker_port is not None else {}
    settings = settings_from(bootstrap_servers=bootstrap_servers, lake=lake, broker=broker)
    if not configured:  # clients reach the local broker on the port it will listen on
        settings.kafka.bootstrap_servers = f"127.0.0.1:{settings.broker.port}"
    return settings, configured


def summary_lines(stack: Stack) -> list[str]:
    """Where to reach the running stack, and how to stop it."""
    port = stack.console_port
    running = stack.running()
    status = "tidelake status"
    if stack.settings.kafka.bootstrap_servers != "127.0.0.1:9092":
        status += f" -b {stack.settings.kafka.bootstrap_servers}"
    lake = stack.settings.lake.root.resolve()
    if lake != Path("lake").resolve():
        status += f" --lake {lake}"
    return [
        f"  Kafka (Kinesis):     {stack.settings.kafka.bootstrap_servers}",
        f"  console:             http://127.0.0.1:{port}/",
        f"  Athena endpoint:     http://127.0.0.1:{port} (boto3 endpoint_url)",
        f"  lake:                {lake}",
        f"  processes:           {len(running)} running; logs in {stack.log_dir}",
        f"  watch it:            {status}",
        "stop it with `tidelake down` (or `make down`)",
    ]


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up_command(
        broker_port: BrokerPortOption = None,
        console_port: ConsolePortOption = 8080,
        bootstrap_servers: BootstrapOption = None,
        lake: LakeOption = None,
        runtime: StreamRuntimeOption = DEFAULT_RUNTIME,
        json_out: JsonOption = False,
    ) -> None:
        """Start the whole pipeline in the background: Kafka (unless -b names one), the topics, the
        six stream apps, the four delivery streams and the query server (console and Athena API).
        Returns once every process runs; they keep running until `tidelake down`. Run again, it
        starts only what is not running."""
        began = time.monotonic()
        settings, configured = stack_settings(bootstrap_servers, lake, broker_port)
        stack = Stack(
            settings, console_port=console_port, broker_configured=configured, stream_runtime=runtime.value
        )
        say = (lambda _: None) if json_out else console.print
        before = stack.preflight()
        say(stack.start_broker())
        started = stack.up(say)
        if json_out:
            print_json({
                "started": [p.name for p in started], "running": [p.name for p in stack.running()],
                "bootstrap_servers": settings.kafka.bootstrap_servers,
                "console": f"http://127.0.0.1:{console_port}/", "logs": str(stack.log_dir),
                "stack_file": str(stack.file),
            })  # fmt: skip
            return
        if before is not None and not started:
            say("the stack is already running; nothing started")
        elif before is not None:
            say(f"started again what had exited: {', '.join(p.name for p in started)}")
        else:
            say(f"started {len(started)} processes, all running after {time.monotonic() - began:.1f} s")
        for line in summary_lines(stack):
            say(line)

    @app.command("down")
    def down_command(
        keep_broker: Annotated[
            bool,
            typer.Option("--keep-broker", help="Leave the local Kafka running, even if `up` started it."),
        ] = False,
        json_out: JsonOption = False,
    ) -> None:
        """Stop what `tidelake up` (or `tidelake demo`) started: every process it recorded, then the
        local Kafka if it started it. A PID now used by another process is left alone."""
        settings = settings_from()
        stack = Stack(settings, broker_configured=True)
        report = stack.down(keep_broker=keep_broker)
        if json_out:
            print_json({
                "stopped": report.stopped, "killed": report.killed, "gone": report.gone,
                "reused": report.reused, "broker": report.broker,
            })  # fmt: skip
            return
        for line in report.lines():
            console.print(line)
