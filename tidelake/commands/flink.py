"""`tidelake flink fetch`: install the Flink runtime of `tidelake stream run --runtime flink`."""

from __future__ import annotations

import time

import typer

from tidelake.commands.options import JsonOption, err_console, print_json
from tidelake.flink_install import FLINK_VERSION, KAFKA_CONNECTOR_VERSION, ensure_flink

app = typer.Typer(
    help="Apache Flink, the engine of Amazon Managed Service for Apache Flink, for stream apps.",
    no_args_is_help=True,
)


@app.command()
def fetch(json_out: JsonOption = False) -> None:
    """Install PyFlink (PyPI, in a venv of its own) and Flink's Kafka connector (Maven Central) now.

    Once; a second run returns at once. `tidelake stream run --runtime flink` needs both."""
    began = time.monotonic()
    install = ensure_flink(say=lambda line: err_console.print(line, highlight=False))
    elapsed_s = round(time.monotonic() - began, 1)
    if json_out:
        print_json(
            {
                "flink_version": FLINK_VERSION,
                "kafka_connector_version": KAFKA_CONNECTOR_VERSION,
                "venv": str(install.venv),
                "connector_jar": str(install.connector_jar),
                "elapsed_s": elapsed_s,
            }
        )
    else:
        err_console.print(
            f"Flink {FLINK_VERSION}: PyFlink in {install.venv}, Kafka connector {install.connector_jar}",
            highlight=False,
        )
