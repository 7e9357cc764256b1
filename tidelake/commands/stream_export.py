"""`tidelake stream export`: a stream app as a script another engine runs (Flink SQL, docs/flink.md)."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from core.errors import ConfigError
from tidelake.commands.options import BootstrapOption, settings_from


class ExportTarget(StrEnum):
    """What `--to` writes."""

    flink_sql = "flink-sql"


def register(stream_app: typer.Typer) -> None:
    """Add `export` to the `tidelake stream` commands."""
    stream_app.command("export")(export)


def export(
    app_or_spec: Annotated[
        str | None,
        typer.Argument(metavar="NAME|SPEC", help="A shipped app (`tidelake stream list`) or a TOML spec."),
    ] = None,
    sql: Annotated[
        str | None,
        typer.Option(
            "--sql",
            metavar="APP.sql",
            help="A Kinesis Data Analytics SQL program (or a shipped one by name).",
        ),
    ] = None,
    to: Annotated[
        ExportTarget,
        typer.Option("--to", help="What to write: a Flink SQL script (the Kafka source, sink and INSERT)."),
    ] = ExportTarget.flink_sql,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Print a stream app as a Flink SQL script that `sql-client.sh -f` runs unchanged.

    The script reads the app's source topic and writes the same rows (same message key, same JSON)
    to the same output topic, exactly once. What Flink SQL cannot express (stagger windows,
    RANDOM_CUT_FOREST, ...) is refused with exit code 2; docs/flink.md has the mapping and what
    differs (late events are dropped, no idle close, bad records are skipped).
    """
    from stream_apps.catalog import resolve_spec, resolve_sql
    from stream_apps.flink_sql import compile_flink_sql
    from stream_apps.kda_sql.apps import sql_app_spec

    if (sql is None) == (app_or_spec is None):
        msg = "give an app NAME or SPEC file, or --sql APP.sql (one of them)"
        raise ConfigError(msg)
    spec = sql_app_spec(resolve_sql(sql)) if sql is not None else resolve_spec(str(app_or_spec))
    servers = settings_from(bootstrap_servers=bootstrap_servers).kafka.bootstrap_servers
    assert to is ExportTarget.flink_sql  # the only choice today
    script = compile_flink_sql(spec, bootstrap_servers=servers)
    sys.stdout.write(script.text)
    sys.stdout.flush()
