"""tidelake for users' own tests: a pytest plugin (`tidelake.testing.plugin`, entry point
`pytest11: tidelake`), the stack it starts (`TidelakeStack`) and a testcontainers module
(`TidelakeContainer`). See docs/testing.md.

Names are imported on first use, so that loading the plugin stays cheap."""

from __future__ import annotations

from typing import Any

__all__ = ["StackError", "StreamApp", "TidelakeContainer", "TidelakeStack", "start_stack"]

_HOMES = {
    "StackError": "tidelake.testing.stack",
    "TidelakeStack": "tidelake.testing.stack",
    "start_stack": "tidelake.testing.stack",
    "StreamApp": "tidelake.testing.apps",
    "TidelakeContainer": "tidelake.testing.container",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name not in _HOMES:
        msg = f"module 'tidelake.testing' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(_HOMES[name]), name)
