"""Lazy public names for a package's `__init__.py` (PEP 562): each name is imported from its module
on first use, so importing a role loads no Kafka client, Faust, DuckDB, Arrow or pydantic.

    __getattr__, __dir__ = lazy_names(__name__, _SOURCES, __all__)

`sources` maps each public name to the module that defines it; `public` is the package's `__all__`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(
    package: str, sources: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's module-level `__getattr__` and `__dir__`. An unknown name is AttributeError."""

    def __getattr__(name: str) -> Any:
        module = sources.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
