"""The `tidelake` command: one entry point for every role of the pipeline.

Exit codes: 0 success, 1 the job failed, 2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from core.errors import TidelakeError
from core.logs import setup_logging
from tidelake.commands import (
    broker,
    demo,
    flink,
    produce,
    query,
    sink,
    stack,
    status,
    stream,
    stream_export,
    topics,
)
from tidelake.commands.options import err_console

app = typer.Typer(
    name="tidelake",
    help="The AWS streaming-analytics stack on one machine: Kafka for Kinesis, Faust for Kinesis "
    "Analytics, Parquet delivery streams for Firehose, DuckDB for Athena.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(broker.app, name="broker")
app.add_typer(topics.app, name="topics")
app.add_typer(flink.app, name="flink")
for commands in (produce, stream, sink, query, status, stack, demo):
    commands.register(app)
stream_export.register(stream.app)


@app.callback()
def _global(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log more, including Kafka clients.")
    ] = False,
) -> None:
    setup_logging(verbose)


def main() -> None:
    try:
        app()
    except TidelakeError as exc:
        # the message as written: rich would read "[anomaly]" in it as markup and drop it
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
