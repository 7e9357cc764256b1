"""The shipped stream apps (stream_apps/specs/*.toml, and their KDA SQL forms specs/*.sql) and how a
NAME or a path becomes a spec."""

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


def shipped_sql() -> dict[str, Path]:
    """Every shipped KDA SQL program (specs/*.sql) by app name, in name order."""
    return {path.stem: path for path in sorted(SPECS_DIR.glob("*.sql"))}


def resolve_sql(name_or_path: str) -> Path:
    """A `.sql` file's path, or the name of a shipped KDA SQL app (`page-views-1m`)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = shipped_sql()
    if name_or_path in shipped:
        return shipped[name_or_path]
    msg = f"no KDA SQL program {name_or_path!r}: no such file, and the shipped ones are {', '.join(shipped)}"
    raise ConfigError(msg)
