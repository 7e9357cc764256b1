"""The `tidelake` commands for replay, generate, agent (producers)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root `tidelake` app (filled in by issue #3)."""
