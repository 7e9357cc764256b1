"""The catalog: tables discovered from the lake's folders (what a Glue crawler + partition projection give Athena).

One table per dataset folder (`<lake>/<dataset>/`, names not starting with `_` or `.`). Its Parquet
files are listed on every refresh, so new partitions appear without a `MSCK REPAIR TABLE`. Hive
partition folders (`dt=2026-11-23/hour=07`) become typed columns: `YYYY-MM-DD` values are DATE,
all-digit values INTEGER, anything else VARCHAR. Hidden and in-progress files (`.name`, `_name`)
are never listed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from core.events import CLICKSTREAM_FIELDS
from core.lake import DATASET_NAME, is_visible_file

#: The raw clickstream dataset; it has a declared schema, so it is a table even before any file lands.
EVENTS_TABLE = "clickstream_events"
_DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_VALUE = re.compile(r"^\d{1,9}$")
_ARROW_TO_SQL = {
    "string": "VARCHAR",
    "timestamp[us, UTC]": "TIMESTAMPTZ",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
}


@dataclass
class Table:
    """One dataset of the lake as the engine sees it."""

    name: str
    location: Path
    files: list[Path] = field(default_factory=list)
    #: partition key -> values seen, in folder order (`dt` -> ['2026-11-23', ...]).
    partitions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def partition_types(self) -> dict[str, str]:
        return {key: _partition_type(values) for key, values in self.partitions.items()}

    @property
    def partition_count(self) -> int:
        return len({f.parent for f in self.files})

    @property
    def total_bytes(self) -> int:
        return sum(_size(f) for f in self.files)

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Changes whenever a file appears, disappears or is rewritten: the view must be rebuilt."""
        return tuple((str(f), _size(f), _mtime_ns(f)) for f in self.files)

    def view_sql(self) -> str | None:
        """`CREATE OR REPLACE VIEW` over this table's files; None when it has neither files nor a schema."""
        name = _quote_ident(self.name)
        if not self.files:
            if self.name != EVENTS_TABLE:
                return None
            columns = ", ".join(
                f"CAST(NULL AS {_ARROW_TO_SQL[kind]}) AS {_quote_ident(col)}"
                for col, kind, _ in CLICKSTREAM_FIELDS
            )
            return f"CREATE OR REPLACE VIEW {name} AS SELECT {columns}, NULL::DATE AS dt, NULL::INTEGER AS hour LIMIT 0"
        files = ", ".join(_quote_literal(str(f)) for f in self.files)
        hive = self.partition_types
        options = [f"hive_partitioning = {'true' if hive else 'false'}"]
        if self.has_schema_drift():
            # union_by_name opens every file's footer at bind time, even in pruned partitions, so it
            # is used only when the files disagree (a one-hour query would otherwise read all footers).
            options.append("union_by_name = true")
        if hive:
            types = ", ".join(f"{_quote_literal(k)}: {v}" for k, v in hive.items())
            options.append(f"hive_types = {{{types}}}")
        return f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{files}], {', '.join(options)})"

    def has_schema_drift(self) -> bool:
        """True when the files do not all have the same columns and types."""
        first = None
        for path in self.files:
            schema = pq.read_schema(path).remove_metadata()
            if first is None:
                first = schema
            elif not schema.equals(first):
                return True
        return False

    def row_count(self) -> int:
        """Rows from the Parquet footers (no data pages are read)."""
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)


def discover(lake: Path) -> list[Table]:
    """Every dataset of the lake, sorted by name; a missing lake folder has none."""
    if not lake.is_dir():
        return []
    tables = []
    for entry in sorted(os.scandir(lake), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and DATASET_NAME.match(entry.name):
            tables.append(_scan_table(entry.name, Path(entry.path)))
    return tables


def _scan_table(name: str, location: Path) -> Table:
    table = Table(name, location)
    real_root = location.resolve()
    for folder, subfolders, filenames in os.walk(location):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
        here = Path(folder)
        for filename in sorted(filenames):
            path = here / filename
            if not filename.endswith(".parquet") or not is_visible_file(path):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                continue  # a link that leaves the lake is not part of it
            table.files.append(path)
            for part in path.relative_to(location).parent.parts:
                key, sep, value = part.partition("=")
                if sep:
                    seen = table.partitions.setdefault(key, [])
                    if value not in seen:
                        seen.append(value)
    return table


def athena_ddl(table: Table, location: str) -> str:
    """`CREATE EXTERNAL TABLE` for real Athena/Trino over the same files copied to `location`."""
    schema = pq.read_schema(table.files[0]) if table.files else None
    partition_keys = list(table.partitions)
    if schema is not None:
        columns = [(f.name, _athena_type(str(f.type))) for f in schema if f.name not in partition_keys]
    else:
        columns = [(n, _athena_type(kind)) for n, kind, _ in CLICKSTREAM_FIELDS]
    body = ",\n".join(f"  `{n}` {t}" for n, t in columns)
    parts = ",\n".join(
        f"  `{k}` {'date' if t == 'DATE' else 'int' if t == 'INTEGER' else 'string'}"
        for k, t in table.partition_types.items()
    )
    root = location.rstrip("/") + f"/{table.name}/"
    lines = [f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table.name}` (", body, ")"]
    if parts:
        lines += ["PARTITIONED BY (", parts, ")"]
    lines += ["STORED AS PARQUET", f"LOCATION '{root}';"]
    if parts:
        lines.append(f"MSCK REPAIR TABLE `{table.name}`;")
    return "\n".join(lines)


def _athena_type(arrow_type: str) -> str:
    if arrow_type.startswith("timestamp"):
        return "timestamp"
    return {
        "string": "string",
        "large_string": "string",
        "int8": "tinyint",
        "int16": "smallint",
        "int32": "int",
        "int64": "bigint",
        "bool": "boolean",
        "double": "double",
        "float": "float",
        "date32[day]": "date",
    }.get(arrow_type, "string")


def _partition_type(values: list[str]) -> str:
    if values and all(_DATE_VALUE.match(v) for v in values):
        return "DATE"
    if values and all(_INT_VALUE.match(v) for v in values):
        return "INTEGER"
    return "VARCHAR"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
