"""Query results as Athena keeps them: `<id>.csv` (header row, every value quoted, NULL empty) and
`<id>.csv.metadata` (here JSON: Athena's ColumnInfo list and the row count; Athena's own is binary).

Values are Athena's text forms (`VarCharValue`): timestamps `2026-11-23 07:00:00.000` in UTC,
booleans `true`/`false`, dates ISO. Types are Athena's names (varchar, bigint, timestamp ...).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv


def athena_type(kind: pa.DataType) -> tuple[str, int, int]:
    """(Athena type name, precision, scale) of an Arrow type."""
    if pa.types.is_boolean(kind):
        return "boolean", 0, 0
    if pa.types.is_int8(kind):
        return "tinyint", 3, 0
    if pa.types.is_int16(kind):
        return "smallint", 5, 0
    if pa.types.is_int32(kind):
        return "integer", 10, 0
    if pa.types.is_integer(kind):
        return "bigint", 19, 0
    if pa.types.is_float32(kind):
        return "float", 17, 0
    if pa.types.is_floating(kind):
        return "double", 17, 0
    if pa.types.is_decimal(kind):
        return "decimal", kind.precision, kind.scale
    if pa.types.is_timestamp(kind):
        return "timestamp", 3, 0
    if pa.types.is_date(kind):
        return "date", 0, 0
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "varbinary", 2_147_483_647, 0
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "array", 0, 0
    if pa.types.is_struct(kind):
        return "row", 0, 0
    if pa.types.is_map(kind):
        return "map", 0, 0
    return "varchar", 2_147_483_647, 0


def column_info(schema: pa.Schema) -> list[dict[str, Any]]:
    """Athena's ResultSetMetadata.ColumnInfo for a result schema."""
    columns = []
    for f in schema:
        name, precision, scale = athena_type(f.type)
        columns.append(
            {
                "CatalogName": "hive",
                "SchemaName": "",
                "TableName": "",
                "Name": f.name,
                "Label": f.name,
                "Type": name,
                "Precision": precision,
                "Scale": scale,
                "Nullable": "UNKNOWN",
                "CaseSensitive": name == "varchar",
            }
        )
    return columns


def as_text(value: Any) -> str | None:
    """One value in Athena's text form; None stays None (NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, list):
        return "[" + ", ".join(str(as_text(v)) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={as_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def as_text_table(table: pa.Table) -> pa.Table:
    """Every column as Athena text (nulls kept)."""
    columns = [pa.array([as_text(v) for v in col.to_pylist()], pa.string()) for col in table.columns]
    return pa.table(columns, names=table.column_names)


def text_bytes(rows: list[list[str | None]]) -> int:
    """About what `rows` of text take in memory: each string's characters plus CPython's overhead."""
    return sum(56 + 8 * len(row) + sum(49 + len(v) for v in row if v is not None) for row in rows)


class ResultStore:
    """The results folder (Athena's OutputLocation), with the last few results kept in memory.

    The in-memory cache holds at most `cached` results and `max_cached_bytes` of their text
    (`text_bytes`); a result bigger than that alone is read from its CSV file for each page.
    """

    def __init__(self, folder: Path, cached: int = 16, max_cached_bytes: int = 64 * 1024 * 1024) -> None:
        self.folder = folder
        self._cache: OrderedDict[str, tuple[list[dict[str, Any]], list[list[str | None]], int]] = (
            OrderedDict()
        )
        self._cached = cached
        self._max_cached_bytes = max_cached_bytes
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(size for _, _, size in self._cache.values())

    def cached_ids(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def csv_path(self, query_id: str) -> Path:
        return self.folder / f"{query_id}.csv"

    def save(self, query_id: str, table: pa.Table) -> int:
        """Write `<id>.csv` and its metadata; returns the data row count."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = as_text_table(table)
        columns = column_info(table.schema)
        temp = self.folder / f".{query_id}.csv.tmp"
        pacsv.write_csv(text, temp, pacsv.WriteOptions(quoting_style="all_valid"))
        temp.replace(self.csv_path(query_id))
        meta = {"ColumnInfo": columns, "Rows": table.num_rows}
        (self.folder / f"{query_id}.csv.metadata").write_text(json.dumps(meta))
        rows = [list(r.values()) for r in text.to_pylist()]
        self._remember(query_id, columns, rows)
        return table.num_rows

    def forget(self, query_id: str) -> None:
        """Remove a result: its CSV file, its metadata and its cached rows (none of them is an error)."""
        with self._lock:
            self._cache.pop(query_id, None)
        for path in (self.csv_path(query_id), self.folder / f"{query_id}.csv.metadata"):
            path.unlink(missing_ok=True)

    def load(self, query_id: str) -> tuple[list[dict[str, Any]], list[list[str | None]]]:
        """(ColumnInfo, data rows as text) of a saved result; FileNotFoundError if there is none."""
        with self._lock:
            if query_id in self._cache:
                self._cache.move_to_end(query_id)
                columns, rows, _ = self._cache[query_id]
                return columns, rows
        meta = json.loads((self.folder / f"{query_id}.csv.metadata").read_text())
        columns = meta["ColumnInfo"]
        if columns:
            names = [c["Name"] for c in columns]
            table = pacsv.read_csv(
                self.csv_path(query_id),
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    null_values=[""],
                ),
            )
            rows = [list(r) for r in zip(*(c.to_pylist() for c in table.columns), strict=True)]
        else:
            rows = []
        self._remember(query_id, columns, rows)
        return columns, rows

    def _remember(self, query_id: str, columns: list[dict[str, Any]], rows: list[list[str | None]]) -> None:
        size = text_bytes(rows)
        if size > self._max_cached_bytes:
            return  # too big to keep: its pages are read from the CSV file
        with self._lock:
            self._cache[query_id] = (columns, rows, size)
            total = sum(entry[2] for entry in self._cache.values())
            while len(self._cache) > self._cached or total > self._max_cached_bytes:
                _, (_, _, dropped) = self._cache.popitem(last=False)
                total -= dropped
