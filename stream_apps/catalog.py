"""The shipped stream apps (stream_apps/specs/*.toml) and how a NAME or a path becomes a spec."""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from stream_apps.spec import AppSpec, load_spec

SPECS_DIR = Path(__file__).resolve().parent / "specs"


def shipped_specs() -> dict[str, AppSpec]:
    """Every shipped app by name, in name order."""
    specs = (load_spec(path) for path in sorted(SPECS_DIR.glob("*.toml")))
    return {spec.name: spec for spec in specs}


def resolve_spec(name_or_path: str) -> AppSpec:
    """A shipped app's name (`page-views-1m`) or the path of a TOML spec file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_spec(path)
    shipped = SPECS_DIR / f"{name_or_path}.toml"
    if shipped.exists():
        return load_spec(shipped)
    names = ", ".join(sorted(p.stem for p in SPECS_DIR.glob("*.toml")))
    msg = f"no stream app named {name_or_path!r} and no such spec file; shipped apps: {names}"
    raise ConfigError(msg)
