"""Reading the TOML files users write (stream-app specs, delivery-stream configs)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.errors import ConfigError


def read_toml(path: Path, what: str, missing_hint: str) -> dict[str, Any]:
    """The table in `path`; ConfigError names the file and says what to do when it is missing
    (`what` is e.g. "delivery-stream config") or is not TOML."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        msg = f"no {what} at {path}; {missing_hint}"
        raise ConfigError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path} is not valid TOML: {exc}"
        raise ConfigError(msg) from exc
