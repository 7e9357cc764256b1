"""The catalog: tables discovered from the lake's folders (what a Glue crawler + partition projection give Athena).

One table per dataset folder (`<lake>/<dataset>/`, names not starting with `_` or `.`). Its Parquet
files are listed on every refresh, so new partitions appear without a `MSCK REPAIR TABLE`. Hive
partition folders (`dt=2026-11-23/hour=07`) become typed columns: `YYYY-MM-DD` values are DATE,
all-digit values INTEGER, anything else VARCHAR. Hidden and in-progress files (`.name`, `_name`)
are never listed.

Only regular files are read, found without following links: the sinks write real files, so a
symlink in the lake (to a file or a folder, inside the lake or out of it) is never tidelake's own
and is skipped, as are FIFOs, sockets and devices, and files that are not Parquet (no `PAR1` at both
ends, or a footer that does not parse). Each skipped entry is named in the table's `skipped`
(`tidelake catalog`, `GET /api/tables`, the console): one bad file never hides the rest of the lake.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import QueryCancelled
from core.events import CLICKSTREAM_FIELDS
from core.lake import DATASET_NAME, NULL_PARTITION, is_visible_file

#: The raw clickstream dataset; it has a declared schema, so it is a table even before any file lands.
EVENTS_TABLE = "clickstream_events"
_DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_VALUE = re.compile(r"^\d{1,9}$")
_PARQUET_MAGIC = b"PAR1"
#: How many files' footers (schema, rows) are kept; a lake file is written once and replaced only by
#: a new name or a compaction, so (path, size, mtime) identifies what was read.
FOOTER_CACHE_SIZE = 200_000
_footers: OrderedDict[tuple[str, int, int], tuple[pa.Schema, int]] = OrderedDict()
_footers_lock = threading.Lock()


def read_footer(path: Path) -> tuple[pa.Schema, int]:
    """(Arrow schema without metadata, row count) from a Parquet file's footer, read once per version
    of the file: a view rebuilt every few seconds while sinks write (a looping demo) would otherwise
    read every footer of the dataset before each query. Errors as pq.ParquetFile (OSError, ValueError)."""
    info = os.stat(path)
    key = (str(path), info.st_size, info.st_mtime_ns)
    with _footers_lock:
        cached = _footers.get(key)
        if cached is not None:
            _footers.move_to_end(key)
            return cached
    with pq.ParquetFile(path) as parquet:
        footer = (parquet.schema_arrow.remove_metadata(), parquet.metadata.num_rows)
    with _footers_lock:
        _footers[key] = footer
        while len(_footers) > FOOTER_CACHE_SIZE:
            _footers.popitem(last=False)
    return footer


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
    #: entries of the dataset folder that are not read, with why (links, FIFOs, not Parquet).
    skipped: dict[Path, str] = field(default_factory=dict)

    def skip(self, path: Path, reason: str) -> None:
        """Leave `path` out of the table (it stays listed in `skipped`)."""
        if path in self.files:
            self.files.remove(path)
        self.skipped[path] = reason

    def warnings(self) -> list[str]:
        """One line per skipped entry, for `tidelake catalog`, the API and the console."""
        return [f"{path}: {reason}" for path, reason in self.skipped.items()]

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
        drift = self.has_schema_drift()  # first: it leaves out files whose footer does not parse
        if not self.files:
            return None
        files = ", ".join(_quote_literal(str(f)) for f in self.files)
        hive = self.partition_types
        options = [f"hive_partitioning = {'true' if hive else 'false'}"]
        if drift:
            # union_by_name opens every file's footer at bind time, even in pruned partitions, so it
            # is used only when the files disagree (a one-hour query would otherwise read all footers).
            options.append("union_by_name = true")
        if hive:
            types = ", ".join(f"{_quote_literal(k)}: {v}" for k, v in hive.items())
            options.append(f"hive_types = {{{types}}}")
        return f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{files}], {', '.join(options)})"

    def has_schema_drift(self) -> bool:
        """True when the files do not all have the same columns and types; an unreadable footer skips its file."""
        first = None
        for path in list(self.files):
            try:
                schema, _ = read_footer(path)
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                self.skip(path, f"not a readable Parquet file ({exc}); it is left out of {self.name!r}")
                continue
            if first is None:
                first = schema
            elif not schema.equals(first):
                return True
        return False

    def row_count(self) -> int:
        """Rows from the Parquet footers (no data pages are read); an unreadable footer counts 0."""
        rows = 0
        for path in self.files:
            try:
                rows += read_footer(path)[1]
            except (OSError, ValueError):
                continue
        return rows


def discover(lake: Path, deadline: float | None = None) -> list[Table]:
    """Every dataset of the lake, sorted by name; a missing lake folder has none.

    `deadline` (a `time.monotonic()` value) bounds the listing by the query's time limit: past it,
    `QueryCancelled`. A link at the top of the lake is listed as a table with nothing but that warning.
    """
    if not lake.is_dir():
        return []
    tables = []
    for entry in sorted(os.scandir(lake), key=lambda e: e.name):
        if not DATASET_NAME.match(entry.name):
            continue
        if entry.is_symlink():
            table = Table(entry.name, Path(entry.path))
            table.skip(Path(entry.path), _LINK)
            tables.append(table)
        elif entry.is_dir(follow_symlinks=False):
            tables.append(_scan_table(entry.name, Path(entry.path), deadline))
    return tables


_LINK = "a symlink; tidelake reads only regular files in the lake (its sinks never write links)"


def _scan_table(name: str, location: Path, deadline: float | None) -> Table:
    table = Table(name, location)
    for folder, subfolders, filenames in os.walk(location):
        if deadline is not None and time.monotonic() > deadline:
            msg = f"query cancelled: time limit reached while listing the lake's files (at {folder})"
            raise QueryCancelled(msg)
        here = Path(folder)
        for sub in [d for d in subfolders if (here / d).is_symlink()]:
            table.skip(here / sub, _LINK)  # os.walk does not descend into links; say so
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
        for filename in sorted(filenames):
            path = here / filename
            if not filename.endswith(".parquet") or not is_visible_file(path):
                continue
            reason = _unreadable(path)
            if reason:
                table.skip(path, reason)
                continue
            table.files.append(path)
            for part in path.relative_to(location).parent.parts:
                key, sep, value = part.partition("=")
                if sep:
                    seen = table.partitions.setdefault(key, [])
                    if value not in seen:
                        seen.append(value)
    return table


def _unreadable(path: Path) -> str | None:
    """Why `path` is not read as a Parquet file, or None. Opens only regular files, never a link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "vanished while the lake was listed"
    if stat.S_ISLNK(info.st_mode):
        return _LINK
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, socket or device); tidelake reads only regular files"
    if info.st_size < 12:
        return "not a Parquet file (too short for a footer); it is left out of its table"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot be opened: {exc.strerror}"
    try:
        head = os.pread(fd, 4, 0)
        tail = os.pread(fd, 4, info.st_size - 4)
    finally:
        os.close(fd)
    if head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        return "not a Parquet file (no PAR1 magic at both ends); it is left out of its table"
    return None


def athena_schema(table: Table) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(columns, partition keys) of `table` as (name, Athena type) pairs, in file order: the
    columns from the first readable footer (the declared clickstream schema when there is none),
    the partition keys `date`, `int` or `string` from their folder values (see `Table.partition_types`).
    What `athena_ddl` writes and Glue's GetTable answers."""
    schema = None
    for path in table.files:
        try:
            schema, _ = read_footer(path)
            break
        except (OSError, ValueError):
            continue  # a broken footer: the next file describes the table as well
    partition_keys = list(table.partitions)
    if schema is not None:
        columns = [(f.name, _athena_type(f.type)) for f in schema if f.name not in partition_keys]
    else:
        columns = [(n, _athena_type(_DECLARED_KINDS[kind])) for n, kind, _ in CLICKSTREAM_FIELDS]
    keys = [
        (k, "date" if t == "DATE" else "int" if t == "INTEGER" else "string")
        for k, t in table.partition_types.items()
    ]
    return columns, keys


def athena_ddl(table: Table, location: str) -> str:
    """`CREATE EXTERNAL TABLE` for real Athena/Trino over the same files copied to `location`."""
    columns, keys = athena_schema(table)
    body = ",\n".join(f"  `{n}` {t}" for n, t in columns)
    parts = ",\n".join(f"  `{k}` {t}" for k, t in keys)
    root = location.rstrip("/") + f"/{table.name}/"
    lines = [f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table.name}` (", body, ")"]
    if parts:
        lines += ["PARTITIONED BY (", parts, ")"]
    lines += ["STORED AS PARQUET", f"LOCATION '{root}';"]
    if parts:
        lines.append(f"MSCK REPAIR TABLE `{table.name}`;")
    return "\n".join(lines)


def _athena_type(arrow_type: pa.DataType) -> str:
    """The Athena (Hive DDL) type of an Arrow type, nested types included.

    Source: the Athena "Data types" page (boolean, tinyint ... bigint, float, double,
    decimal(p,s), string, binary, date, timestamp, `array<T>`, `map<K,V>`,
    `struct<name:T,...>`). Athena has no unsigned integers, so each widens to the next signed
    type (uint64 to decimal(20,0)); a time of day, a duration or a null-typed column is a string.
    """
    t = arrow_type
    if pa.types.is_struct(t):
        fields = (t.field(i) for i in range(t.num_fields))
        return (
            "struct<" + ",".join(f"{_struct_field_name(f.name)}:{_athena_type(f.type)}" for f in fields) + ">"
        )
    if pa.types.is_map(t):
        return f"map<{_athena_type(t.key_type)},{_athena_type(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"array<{_athena_type(t.value_type)}>"
    if pa.types.is_dictionary(t):
        return _athena_type(t.value_type)
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    for check, name in _ATHENA_SCALARS:
        if check(t):
            return name
    return "string"


_ATHENA_SCALARS = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_int8, "tinyint"),
    (pa.types.is_int16, "smallint"),
    (pa.types.is_int32, "int"),
    (pa.types.is_int64, "bigint"),
    (pa.types.is_uint8, "smallint"),
    (pa.types.is_uint16, "int"),
    (pa.types.is_uint32, "bigint"),
    (pa.types.is_uint64, "decimal(20,0)"),
    (pa.types.is_float16, "float"),
    (pa.types.is_float32, "float"),
    (pa.types.is_float64, "double"),
)
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _struct_field_name(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else "`" + name.replace("`", "``") + "`"


#: The declared clickstream kinds (core.events.CLICKSTREAM_FIELDS) as Arrow types.
_DECLARED_KINDS = {
    "string": pa.string(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
}


def _partition_type(values: list[str]) -> str:
    """DATE, INTEGER or VARCHAR from a key's folder values; the NULL partition (Hive's
    `__HIVE_DEFAULT_PARTITION__`, read as NULL) never decides it, as a null never fixes a type."""
    values = [v for v in values if v != NULL_PARTITION]
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
