"""The `tidelake` commands for stream run (stream apps)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root `tidelake` app (filled in by issue #4)."""
