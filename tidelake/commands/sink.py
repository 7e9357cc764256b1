"""The `tidelake` commands for sink run (delivery streams)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root `tidelake` app (filled in by issue #5)."""
