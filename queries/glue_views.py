"""Views over the Glue tables made by CreateTable or `CREATE EXTERNAL TABLE`: what makes
`SELECT ... FROM uploads.sales` run on the engine.

    sql, stamp = glue_view_sql(source, schema="uploads")   # source: queries.glue_api.TableSource

The engine, never a user's statement, builds these reads (queries/sandbox.py still refuses every
file-reading table function in user SQL). Each view reads only regular files found under the
table's folder without following links, a folder `queries.glue_locations` has already confined to
the lake; hidden and in-progress names (`.x`, `_x`) are never read.

How each format is read, as Athena reads it (Athena's DDL reference, "CREATE TABLE",
"LazySimpleSerDe for CSV, TSV, and custom-delimited files", "OpenCSVSerDe", "JSON SerDe libraries"):
- **csv** (LazySimpleSerDe, OpenCSVSerDe): `read_csv` with the SerDe's `field.delim` (or
  `separatorChar`, default `,`: tidelake differs from Hive's `\\x01`), no header unless
  `skip.header.line.count` skips it, every field read as text and then `TRY_CAST` to the declared
  type: a value that does not parse is NULL, as with Hive's SerDes, never a failed query;
- **json** (one object per line): `read_json` with the declared columns, matched by name;
- **parquet**: `read_parquet`, the declared columns matched by name and cast to the declared type.

A table with PARTITIONED BY reads only its registered partitions (MSCK REPAIR TABLE, ALTER TABLE
ADD PARTITION, BatchCreatePartition), each folder's files with its values as typed columns, as
Athena does; one without partition keys reads every file under its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from core.lake import is_visible_file

#: Athena (Hive) type -> DuckDB type; decimal(p,s), varchar(n) and char(n) are handled by pattern.
_TYPES = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "boolean": "BOOLEAN",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "real": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "binary": "BLOB",
}
_SIZED = re.compile(r"^(varchar|char)\(\s*\d+\s*\)$")
_DECIMAL = re.compile(r"^decimal(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")


class GlueViewError(ValueError):
    """A Glue table the engine cannot read (an unknown type or format); the message says which."""


def duckdb_type(athena_type: str) -> str:
    """DuckDB's type for an Athena column type (`decimal(10,2)` -> `DECIMAL(10,2)`); GlueViewError
    for a type tidelake does not read (array, map, struct)."""
    text = athena_type.strip().lower()
    if text in _TYPES:
        return _TYPES[text]
    if _SIZED.match(text):
        return "VARCHAR"
    decimal = _DECIMAL.match(text)
    if decimal:
        precision, scale = decimal.group(1) or "10", decimal.group(2) or "0"
        return f"DECIMAL({precision},{scale})"
    msg = f"column type {athena_type!r} is not read by tidelake (only primitive types: {', '.join(sorted(_TYPES))}, decimal(p,s))"
    raise GlueViewError(msg)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def data_files(folder: Path) -> list[Path]:
    """Regular, visible files under `folder` (recursively), sorted; links are never followed."""
    found: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for here, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
        for name in sorted(names):
            path = Path(here) / name
            if name.startswith(".") or not is_visible_file(path) or path.is_symlink() or not path.is_file():
                continue
            found.append(path)
    return found


def _stamp(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in files:
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(out)


def _read(source: Any, files: list[Path], columns: list[tuple[str, str]]) -> str:
    """A SELECT of the declared `columns` (name, DuckDB type) from `files` in the source's format."""
    listed = "[" + ", ".join(quote_literal(str(f)) for f in files) + "]"
    if source.format == "csv":
        serde = source.serde_parameters
        opencsv = "separatorChar" in serde or "quoteChar" in serde
        delim = serde.get("field.delim") or serde.get("separatorChar") or ","
        skip = source.table_parameters.get("skip.header.line.count", "0")
        if not skip.isdigit():
            raise GlueViewError(f"skip.header.line.count {skip!r} is not a number")
        quote = serde.get("quoteChar", '"' if opencsv else "")
        text_columns = ", ".join(f"{quote_literal(name)}: 'VARCHAR'" for name, _ in columns)
        options = [
            f"columns = {{{text_columns}}}",
            f"delim = {quote_literal(delim)}",
            "header = false",
            f"skip = {int(skip)}",
            f"quote = {quote_literal(quote)}",
            f"escape = {quote_literal(serde.get('escapeChar', quote))}",
            "auto_detect = false",
            "null_padding = true",
            "nullstr = '\\N'",
        ]
        # concat(x, '') keeps DuckDB 2.0 from pushing the TRY_CAST into read_csv as a strict cast
        # (which fails the whole query on one bad value); concat of NULL is '', which casts to NULL
        select = ", ".join(
            f"{quote_ident(name)}"
            if kind == "VARCHAR"
            else f"TRY_CAST(concat({quote_ident(name)}, '') AS {kind}) AS {quote_ident(name)}"
            for name, kind in columns
        )
        return f"SELECT {select} FROM read_csv({listed}, {', '.join(options)})"
    if source.format == "json":
        declared = ", ".join(f"{quote_literal(name)}: {quote_literal(kind)}" for name, kind in columns)
        select = ", ".join(quote_ident(name) for name, _ in columns)
        return f"SELECT {select} FROM read_json({listed}, format = 'newline_delimited', columns = {{{declared}}})"
    if source.format == "parquet":
        select = ", ".join(
            f"CAST({quote_ident(name)} AS {kind}) AS {quote_ident(name)}" for name, kind in columns
        )
        return f"SELECT {select} FROM read_parquet({listed}, union_by_name = true)"
    msg = f"format {source.format!r} is not read by tidelake (parquet, csv and json are)"
    raise GlueViewError(msg)


def glue_view_sql(source: Any, schema: str) -> tuple[str, tuple[Any, ...]]:
    """(`CREATE OR REPLACE VIEW "schema"."name" AS ...`, a stamp that changes when the view must be
    rebuilt) for a `queries.glue_api.TableSource`; GlueViewError when it cannot be read."""
    columns = [(name, duckdb_type(kind)) for name, kind in source.columns]
    keys = [(name, duckdb_type(kind)) for name, kind in source.partition_keys]
    if not columns:
        raise GlueViewError(f"table {source.name} declares no columns")
    empty = ", ".join(f"CAST(NULL AS {kind}) AS {quote_ident(name)}" for name, kind in [*columns, *keys])
    parts: list[str] = []
    stamps: list[Any] = []
    if keys:
        for values, folder in source.partitions:
            files = data_files(folder)
            stamps.append((tuple(values), _stamp(files)))
            if not files:
                continue
            literals = ", ".join(
                f"CAST({'NULL' if value is None else quote_literal(value)} AS {kind}) AS {quote_ident(name)}"
                for value, (name, kind) in zip(values, keys, strict=True)
            )
            parts.append(f"SELECT *, {literals} FROM ({_read(source, files, columns)})")
    else:
        files = data_files(source.location)
        stamps.append(_stamp(files))
        if files:
            parts.append(_read(source, files, columns))
    body = " UNION ALL ".join(parts) if parts else f"SELECT {empty} LIMIT 0"
    sql = f"CREATE OR REPLACE VIEW {quote_ident(schema)}.{quote_ident(source.name)} AS {body}"
    return sql, (sql, tuple(stamps))
