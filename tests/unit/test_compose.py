"""docker-compose.yml stays honest: every tidelake service runs a real command, every
TIDELAKE_* variable is a real setting, and Kafka is the version the local broker runs."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer.main
import yaml

from core.settings import KAFKA_VERSION, Settings
from tidelake.cli import app

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def tidelake_services() -> dict[str, dict]:
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if svc.get("image", "").startswith("tidelake")
    }


def test_kafka_image_is_the_local_broker_version() -> None:
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_there_are_tidelake_services() -> None:
    assert "topics" in tidelake_services()


@pytest.mark.parametrize("name", sorted(tidelake_services()))
def test_service_command_is_a_real_tidelake_command(name: str) -> None:
    args = list(tidelake_services()[name]["command"])
    command: click.Command = typer.main.get_command(app)
    path = ["tidelake"]
    while isinstance(command, click.Group):
        assert args, f"{name}: {' '.join(path)} needs a sub-command"
        sub = command.commands.get(args[0])
        assert sub is not None, f"{name}: {' '.join(path)} has no command {args[0]!r}"
        path.append(args.pop(0))
        command = sub
    # Parsing checks every option and argument exactly as the CLI would, without running anything.
    command.make_context(" ".join(path), args)


def _known_env_vars() -> set[str]:
    names = set()
    for section, field in Settings.model_fields.items():
        for sub in field.annotation.model_fields:  # type: ignore[union-attr]
            names.add(f"TIDELAKE_{section.upper()}__{sub.upper()}")
    return names


@pytest.mark.parametrize("name", sorted(tidelake_services()))
def test_service_environment_names_real_settings(name: str) -> None:
    env = tidelake_services()[name].get("environment", {})
    tidelake_vars = {key for key in env if key.startswith("TIDELAKE_")}
    assert tidelake_vars, f"{name} sets no TIDELAKE_* variable"
    assert tidelake_vars <= _known_env_vars(), tidelake_vars - _known_env_vars()
