"""Options that many commands share, and the one way to turn them into settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from core.settings import Settings, load_settings

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Kafka address host:port (like a Kinesis endpoint). Env: TIDELAKE_KAFKA__BOOTSTRAP_SERVERS.",
        show_default=False,
    ),
]
LakeOption = Annotated[
    Path | None,
    typer.Option(
        "--lake", help="The lake folder (like an S3 bucket). Env: TIDELAKE_LAKE__ROOT.", show_default=False
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one machine-readable JSON line at the end instead of tables.")
]

#: Human output goes to stdout through this console; errors and logs go to stderr.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def settings_from(
    *, bootstrap_servers: str | None = None, lake: Path | None = None, **sections: dict[str, Any]
) -> Settings:
    """Settings from the environment, with the flags that were given laid on top."""
    overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in sections.items() if v}
    if bootstrap_servers is not None:
        overrides.setdefault("kafka", {})["bootstrap_servers"] = bootstrap_servers
    if lake is not None:
        overrides.setdefault("lake", {})["root"] = lake
    return load_settings(**overrides)


def print_json(payload: dict[str, Any]) -> None:
    """One JSON line on stdout, for `--json`."""
    print(json.dumps(payload, default=str), flush=True)
