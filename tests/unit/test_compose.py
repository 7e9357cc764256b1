"""docker-compose.yml stays honest: every tidelake service runs a real command, every
TIDELAKE_* variable is a real setting, and Kafka is the version the local broker runs.

`compose()` reads the file as `docker compose config` does for what the file uses: YAML merge keys
(`<<: *tidelake`) and `${NAME:-default}` interpolation from the caller's environment (tests/e2e/
test_compose.py runs the file with it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main
import yaml

from core.settings import KAFKA_VERSION, Settings
from tidelake.cli import app

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


#: The variables the file may interpolate (`NAME=value docker compose up`); a new one needs a row here
#: and in the e2e test's table.
INTERPOLATED = {"REPLAY_SPEED", "STREAM_RUNTIME"}
_VARIABLE = re.compile(r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<dollar>\$))")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` with compose's `${NAME:-default}` (default when NAME is unset or empty), `${NAME}` and
    `$$` replaced in every string (keys stay as written). Raises ValueError for another form, a
    variable outside `INTERPOLATED`, or `${NAME}` unset without a default."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name = match["name"]
        if name not in INTERPOLATED:
            msg = f"docker-compose.yml interpolates ${{{name}}}, which INTERPOLATED does not know"
            raise ValueError(msg)
        given = env.get(name)
        if given:
            return given
        if match["default"] is None:
            msg = f"${{{name}}} is not set and has no default"
            raise ValueError(msg)
        return match["default"]

    if "$" in _VARIABLE.sub("", value):
        msg = f"unsupported interpolation in {value!r} (only ${{NAME:-default}}, ${{NAME}} and $$)"
        raise ValueError(msg)
    return _VARIABLE.sub(substitute, value)


def compose(env: Mapping[str, str] | None = None) -> dict:
    """The file as compose runs it, with `env` as the shell's variables (none set: the defaults)."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env or {})


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


def test_interpolated_variables_have_defaults_and_reach_the_command() -> None:
    """`docker compose up` with nothing set runs the documented default pace; REPLAY_SPEED changes it."""
    assert compose()["services"]["replay"]["command"][3] == "50"
    assert compose({"REPLAY_SPEED": "500"})["services"]["replay"]["command"][3] == "500"
    assert compose({"REPLAY_SPEED": ""})["services"]["replay"]["command"][3] == "50"


def test_interpolation_keeps_an_escaped_dollar() -> None:
    assert interpolate({"a": ["$$x"], "b": 1}, {}) == {"a": ["$x"], "b": 1}


@pytest.mark.parametrize("text", ["${OTHER:-1}", "$REPLAY_SPEED", "${REPLAY_SPEED?}", "${REPLAY_SPEED}"])
def test_interpolation_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError):
        interpolate(text, {})
