"""Options that many commands share, the one way to turn them into settings, and the help's style.

Help shows values the way the AWS CLI and click do: an upper-case metavar per option that takes a
value (`INTEGER`, `FLOAT`, `TEXT`, `PATH`, or a chosen one such as `SECONDS` or `HOST:PORT`),
nothing for a flag, and the default of every option that has one. Typer 0.29 labels values with
Python types instead (`<bool>`, `<list[str]>`, `<int range>`) and has no switch for it, so
`install_help_style()` replaces its two label methods; importing this module installs it, and
tests/unit/test_cli_help.py checks every command's help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
import typer.core
from rich.console import Console

from core.settings import Settings, load_settings

#: Value types as the AWS CLI's and click's help name them.
_TYPE_METAVARS: dict[Any, str] = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN"}


def metavar_of(param: Any) -> str:
    """The upper-case metavar of a typer parameter's value: its own `metavar`, else one from its
    type (`INTEGER`, `FLOAT`, `TEXT`, `PATH`, `FILE`, `DIR`, `[a|b]` for choices)."""
    if param.metavar:
        return str(param.metavar)
    desc = param.type_descriptor
    if desc.is_choice and desc.choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices) + "]"
    if desc.is_path:
        return str(desc.path_type).upper()
    if desc.is_datetime:
        return "DATETIME"
    annotation = desc.annotation
    if desc.is_list and get_args(annotation):
        annotation = get_args(annotation)[0]
    return _TYPE_METAVARS.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def _display_type(self: Any, ctx: Any) -> str:
    return metavar_of(self)


def _option_display_type(self: Any, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None  # a flag takes no value, so it shows none
    return metavar_of(self) + ("..." if self.nargs != 1 else "")


def install_help_style() -> None:
    """Make typer's help show AWS-CLI-style metavars instead of Python type labels (idempotent)."""
    typer.core._TyperParameter.display_type = _display_type  # type: ignore[method-assign]
    typer.core.TyperOption.display_type_rich = _option_display_type  # type: ignore[method-assign]


install_help_style()

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        metavar="HOST:PORT",
        help="Kafka address host:port (like a Kinesis endpoint). Env: TIDELAKE_KAFKA__BOOTSTRAP_SERVERS.",
        show_default="127.0.0.1:9092",
    ),
]
LakeOption = Annotated[
    Path | None,
    typer.Option(
        "--lake",
        metavar="DIR",
        help="The lake folder (like an S3 bucket). Env: TIDELAKE_LAKE__ROOT.",
        show_default="lake",
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
