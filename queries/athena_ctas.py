"""CREATE TABLE AS SELECT (CTAS) into Athena's results bucket: what awswrangler's
`wr.athena.read_sql_query` (ctas_approach=True, its default) sends.

    statement = parse_ctas(sql, database="default")      # None when `sql` is not CTAS
    table = run_ctas(statement, engine, results_folder)  # the `rows` result; files + manifest written

Athena's "CREATE TABLE AS" reference, as far as tidelake goes:
- `CREATE TABLE [db.]name WITH (external_location = 's3://...', format = 'PARQUET',
  write_compression = 'SNAPPY'|'GZIP'|'ZSTD'|'NONE', ...) AS <query> [WITH [NO] DATA]`; names may
  be double-quoted (`"default"."temp_table_0a1b"`, awswrangler's spelling).
- The query runs on the engine (same sandbox and limits as any query); its rows are written as one
  Parquet file under the location, and a data manifest (`<location>-manifest.csv`, one `s3://` path
  per line) beside it, which GetQueryExecution reports as Statistics.DataManifestLocation.
- The location must be a new folder of the query-results bucket (`s3://tidelake-query-results/<name>`;
  default `tables/<db>_<name>`): the lake stays read-only to SQL (DESIGN: no CTAS into the lake).
  An existing folder is Athena's HIVE_PATH_ALREADY_EXISTS.
- Only Parquet; `partitioned_by`, `bucketed_by`, `bucket_count` and other formats FAIL with a
  message. The new table is not registered in Glue (its files are outside the lake, where Glue
  tables may point): query the files through the manifest, as awswrangler does.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import QueryError

#: Athena's results bucket, where CTAS writes (queries/s3_api.py serves it).
RESULTS_BUCKET = "tidelake-query-results"
_START = re.compile(r"^\s*create\s+table\s+", re.IGNORECASE)
_NAME = r'(?:"([^"]+)"|`([^`]+)`|([A-Za-z0-9_]+))'
_QUALIFIED = re.compile(rf"{_NAME}(?:\s*\.\s*{_NAME})?\s*", re.IGNORECASE)
_PROPERTY = re.compile(
    r"\s*([A-Za-z_]+)\s*=\s*('(?:[^']|'')*'|ARRAY\s*\[[^\]]*\]|[0-9]+)\s*(,|$)", re.IGNORECASE | re.DOTALL
)
_DATA = re.compile(r"\s+with\s+(no\s+)?data\s*;?\s*$", re.IGNORECASE)
_FOLDER = re.compile(r"^(tables/)?[A-Za-z0-9_-]+$")
_COMPRESSION = {"SNAPPY": "snappy", "GZIP": "gzip", "ZSTD": "zstd", "NONE": "none", "UNCOMPRESSED": "none"}
_UNSUPPORTED = (
    "partitioned_by",
    "bucketed_by",
    "bucket_count",
    "field_delimiter",
    "is_external",
    "table_type",
)


class CtasError(QueryError):
    """A CTAS statement tidelake does not run; the message says why and what works."""


@dataclass
class CtasStatement:
    database: str
    name: str
    query: str
    properties: dict[str, str] = field(default_factory=dict)
    with_data: bool = True

    @property
    def folder_key(self) -> str:
        """The results-bucket folder the table's files go to (`<name>` or `tables/<db>_<name>`)."""
        location = self.properties.get("external_location")
        if location is None:
            return f"tables/{self.database}_{self.name}"
        prefix = f"s3://{RESULTS_BUCKET}/"
        key = location[len(prefix) :].strip("/") if location.startswith(prefix) else ""
        if not _FOLDER.match(key) or key in (".", "..") or key.endswith("/.."):
            msg = (
                f"external_location {location!r} is not a new folder of s3://{RESULTS_BUCKET}/: tidelake "
                "writes CTAS results only there (the lake is read-only to SQL)"
            )
            raise CtasError(msg)
        return key

    @property
    def manifest_key(self) -> str:
        return f"{self.folder_key}-manifest.csv"


def parse_ctas(sql: str, database: str) -> CtasStatement | None:
    """The CTAS statement `sql` is, or None when it is not `CREATE TABLE ... AS`. CtasError when it
    is CTAS that tidelake cannot read."""
    start = _START.match(sql)
    if start is None:
        return None
    named = _QUALIFIED.match(sql, start.end())
    if named is None:
        return None
    parts = [g for g in named.groups()]
    first = parts[0] or parts[1] or parts[2]
    second = parts[3] or parts[4] or parts[5]
    db, name = (first, second) if second else (database, first)
    rest = sql[named.end() :]
    properties: dict[str, str] = {}
    head = re.match(r"with\s*\(", rest, re.IGNORECASE)
    if head is not None:
        end = _closing(rest, head.end())
        body = rest[head.end() : end]
        at = 0
        while at < len(body.strip()):
            found = _PROPERTY.match(body, at)
            if found is None:
                raise CtasError(
                    f"cannot read the WITH (...) properties of CREATE TABLE AS at {body[at : at + 30]!r}"
                )
            value = found.group(2)
            properties[found.group(1).lower()] = (
                value[1:-1].replace("''", "'") if value.startswith("'") else value
            )
            at = found.end()
        rest = rest[end + 1 :]
    body_start = re.match(r"\s*as\s+", rest, re.IGNORECASE)
    if body_start is None:
        return None  # CREATE TABLE without AS: the DDL module answers it
    query = rest[body_start.end() :]
    data = _DATA.search(query)
    with_data = data is None or not data.group(1)
    if data is not None:
        query = query[: data.start()]
    query = query.strip().rstrip(";").strip()
    if query.startswith("(") and query.endswith(")"):
        query = query[1:-1]
    return CtasStatement(db.lower(), name.lower(), query, properties, with_data)


def _closing(text: str, at: int) -> int:
    depth, quoted = 1, False
    for index in range(at, len(text)):
        char = text[index]
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
            if depth == 0:
                return index
    raise CtasError("the WITH ( of CREATE TABLE AS is not closed")


def run_ctas(statement: CtasStatement, engine: Any, results: Path) -> pa.Table:
    """Run the statement's query on `engine` and write its rows and manifest under `results` (the
    results bucket's folder); the result is Athena's CTAS answer, one `rows` column."""
    for prop in _UNSUPPORTED:
        if prop in statement.properties:
            raise CtasError(
                f"CREATE TABLE AS with {prop} is not run by tidelake (one unpartitioned Parquet file is)"
            )
    fmt = statement.properties.get("format", "PARQUET").upper()
    if fmt != "PARQUET":
        raise CtasError(f"CREATE TABLE AS with format '{fmt}' is not run by tidelake (PARQUET is)")
    compression_name = (
        statement.properties.get("write_compression")
        or statement.properties.get("parquet_compression")
        or "GZIP"
    ).upper()
    if compression_name not in _COMPRESSION:
        raise CtasError(f"write_compression '{compression_name}' is not one of {', '.join(_COMPRESSION)}")
    folder_key = statement.folder_key
    folder = results / folder_key
    if folder.exists() or folder.is_symlink():
        msg = (
            f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{statement.database}.{statement.name}' "
            f"already exists: s3://{RESULTS_BUCKET}/{folder_key}"
        )
        raise CtasError(msg)
    result = engine.run(statement.query, database=statement.database)
    table = result.table if statement.with_data else result.table.slice(0, 0)
    folder.mkdir(parents=True)
    name = f"{uuid.uuid4().hex}.parquet"
    temp = folder / f".{name}"
    pq.write_table(table, temp, compression=_COMPRESSION[compression_name])
    os.replace(temp, folder / name)
    manifest = results / statement.manifest_key
    pending = manifest.with_name("." + manifest.name)
    pending.write_text(f"s3://{RESULTS_BUCKET}/{folder_key}/{name}\n")
    os.replace(pending, manifest)
    return pa.table({"rows": pa.array([table.num_rows], pa.int64())})
