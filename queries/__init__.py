"""Athena on DuckDB: the catalog discovered from the lake, the sandboxed engine, named queries and
the bill of each query.

- `Engine(lake).run(sql)` -> `QueryResult` (rows, bytes scanned), within `Limits`;
- `discover(lake)` -> the catalog's `Table`s (columns, partitions, rows, bytes);
- `load_all()` -> the `NamedQuery`s of queries/sql/; `athena_bill(bytes)` -> the `Bill`.

Public surface (`__all__`, guarded by tests/unit/test_exported_members.py). Names resolve on first
use (PEP 562 `__getattr__`): `import queries` does not import DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy_names import lazy_names

if TYPE_CHECKING:
    from queries.billing import Bill, athena_bill
    from queries.catalog import Table, discover
    from queries.engine import Engine, Limits, QueryResult
    from queries.named import NamedQuery, load_all

#: Each public name and the module that defines it.
_SOURCES = {
    "Bill": "queries.billing",
    "Engine": "queries.engine",
    "Limits": "queries.engine",
    "NamedQuery": "queries.named",
    "QueryResult": "queries.engine",
    "Table": "queries.catalog",
    "athena_bill": "queries.billing",
    "discover": "queries.catalog",
    "load_all": "queries.named",
}

__all__ = [
    "Bill",
    "Engine",
    "Limits",
    "NamedQuery",
    "QueryResult",
    "Table",
    "athena_bill",
    "discover",
    "load_all",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, __all__)
