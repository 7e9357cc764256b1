"""Record format conversion: JSON record values -> one Arrow table, plus the records that failed.

Like Firehose's JSON -> Parquet conversion, but the whole batch is parsed at once by Arrow's JSON
reader (C++), which is what lets a Python sink keep up with Kafka. When a batch fails, it is split in
halves until every bad record stands alone (a few reads per bad record), so one bad record costs its
neighbours nothing. A bad record becomes a `format-conversion-failed` error with a message that says
which field was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.json as pj

from sinks.schemas import DatasetSchema, type_name

#: Arrow's JSON reader works in blocks. One thread: it runs beside the consumer (the writer thread),
#: and more threads only compete with the kafka-python threads for the cores. 4 MiB blocks stay in
#: the CPU caches: 200k events (66 MB) parse in 0.165 s of CPU, against 0.185 s with 16 MiB blocks
#: and 0.213 s with one 64 MiB block (same machine, same run).
READ_BLOCK_BYTES = 4 << 20


@dataclass
class Conversion:
    """The rows that converted (`table`, row i from input `rows[i]`) and `errors` as (input, message)."""

    table: pa.Table
    rows: Sequence[int]
    errors: list[tuple[int, str]] = field(default_factory=list)


def convert(
    values: Sequence[bytes | None], schema: DatasetSchema, *, joined: bytes | None = None
) -> Conversion:
    """Parse `values` (one JSON object each) into `schema`'s columns; bad ones go to `errors`.
    `joined`, when the caller has it, is `values` already joined one per line (see `_joined`)."""
    tables: list[pa.Table] = []
    rows: list[int] = []
    errors: list[tuple[int, str]] = []
    whole = joined if joined is not None else _joined(values)
    if whole is not None:  # the common case: one read of the whole batch
        table = _read(whole, len(values), schema)
        if table is not None:
            return Conversion(schema.conform(table), range(len(values)))
    clean = [_one_line(v) for v in values]  # the slow path: some value is missing or spans lines
    _convert_range(clean, 0, len(clean), schema, tables, rows, errors)
    if tables:
        table = pa.concat_tables([schema.conform(t) for t in tables], promote_options="permissive")
    else:
        table = schema.arrow.empty_table()
    return Conversion(table, rows, errors)


def combine(parts: Sequence[Conversion], schema: DatasetSchema) -> Conversion:
    """Conversions of consecutive batches as the conversion of the whole: row and error indices
    shift by the size of the batches before, tables take the dataset's latest columns."""
    if len(parts) == 1:
        part = parts[0]
        return Conversion(schema.conform(part.table), part.rows, part.errors)
    tables = [schema.conform(part.table) for part in parts]
    table = pa.concat_tables(tables, promote_options="permissive")
    total = sum(len(part.rows) + len(part.errors) for part in parts)
    if not any(part.errors for part in parts):
        return Conversion(table, range(total))
    rows: list[int] = []
    errors: list[tuple[int, str]] = []
    base = 0
    for part in parts:
        rows.extend(base + i for i in part.rows)
        errors.extend((base + i, message) for i, message in part.errors)
        base += len(part.rows) + len(part.errors)
    return Conversion(table, rows, errors)


def _joined(values: Sequence[bytes | None]) -> bytes | None:
    """All values, one per line, if none is missing and none has a line break of its own."""
    if not isinstance(values, list):
        return None  # packed columns join themselves (`PackedBytes.joined`)
    try:
        data = b"\n".join(values)
    except TypeError:  # a None (tombstone) among them
        return None
    if data.count(b"\n") != len(values) - 1 or b"\r" in data:
        return None
    return data


def _one_line(value: bytes | None) -> bytes | None:
    """A raw newline can only be whitespace in valid JSON, so it can become a space."""
    if value is not None and (b"\n" in value or b"\r" in value):
        return value.replace(b"\r", b" ").replace(b"\n", b" ")
    return value


def _convert_range(
    values: list[bytes | None],
    start: int,
    stop: int,
    schema: DatasetSchema,
    tables: list[pa.Table],
    rows: list[int],
    errors: list[tuple[int, str]],
) -> None:
    if start >= stop:
        return
    chunk = values[start:stop]
    if None not in chunk and b"" not in chunk:
        table = _read(b"\n".join(chunk), len(chunk), schema)  # type: ignore[arg-type]
        if table is not None:
            tables.append(table)
            rows.extend(range(start, stop))
            return
    if stop - start == 1:
        errors.append((start, explain(values[start], schema)))
        return
    middle = (start + stop) // 2
    _convert_range(values, start, middle, schema, tables, rows, errors)
    _convert_range(values, middle, stop, schema, tables, rows, errors)


def _read(data: bytes, count: int, schema: DatasetSchema) -> pa.Table | None:
    """`count` records, one per line, as a table; None if any of them does not convert. An inferred
    schema learns from the batch (`DatasetSchema.learn`): new fields, the types of pending ones, and
    int columns widened to float64 when a fraction shows up."""
    explicit = schema.explicit_for(())
    table = _read_json(data, explicit, schema.declared)
    if not schema.declared:
        if table is None:
            # an int column may have met a fraction: read it loose, and widen if that is all it was
            loose = _read_json(data, schema.explicit_for((), loose_numbers=True), declared=False)
            widened = None if loose is None else schema.merged(loose.schema)
            if widened is None:
                return None
            trial = DatasetSchema(widened, declared=False, name=schema.name)
            table = _read_json(data, trial.explicit_for(()), declared=False)
        elif table.num_rows == count:
            # a field seen for the first time (or still pending) whose name has a rule: read again
            wanted = schema.explicit_for(table.column_names)
            if any(
                f.name not in explicit.names and not table.schema.field(f.name).type.equals(f.type)
                for f in wanted
                if f.name in table.column_names
            ):
                order = table.column_names  # as the records have them, not rule-typed fields first
                table = _read_json(data, wanted, declared=False)
                if table is not None and set(table.column_names) == set(order):
                    table = table.select(order)
    if table is None or table.num_rows != count:
        return None
    try:
        table.validate(full=True)  # Arrow's reader does not check that strings are UTF-8
    except pa.ArrowInvalid:
        return None
    if not schema.learn(table.schema):
        return None
    return table


def _read_json(data: bytes, explicit: pa.Schema, declared: bool) -> pa.Table | None:
    try:
        return _read_json_or_raise(data, explicit, declared)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None


def _read_json_or_raise(data: bytes, explicit: pa.Schema, declared: bool) -> pa.Table:
    options = pj.ParseOptions(
        explicit_schema=explicit, unexpected_field_behavior="ignore" if declared else "infer"
    )
    return pj.read_json(
        pa.BufferReader(data),  # zero-copy, and no Python file calls while Arrow reads
        read_options=pj.ReadOptions(block_size=READ_BLOCK_BYTES, use_threads=False),
        parse_options=options,
    )


def explain(value: bytes | None, schema: DatasetSchema) -> str:
    """Why one record does not convert, in words a user can act on: the field (a dotted path for a
    nested one), the type the dataset expects and the JSON type and value the record has."""
    if value is None:
        return "the record has no value (a tombstone); expected one JSON object"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the record is not UTF-8 text ({exc.reason} at byte {exc.start}); expected one JSON object"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if not isinstance(parsed, dict):
        return f"expected one JSON object, got {json_type(parsed)}"
    columns = schema.fields if schema.declared else list(schema.explicit_for(parsed.keys()))
    for column in columns:
        present = column.name in parsed and parsed[column.name] is not None
        if not present and not column.nullable:
            return f"required field {column.name!r} is missing or null (schema {schema.name})"
        if present:
            wrong = mismatch(parsed[column.name], column.type, column.name)
            if wrong is not None:
                return f"{wrong} (schema {schema.name})"
    try:  # what Arrow itself says about the record, as a last resort
        _read_json_or_raise(value.replace(b"\n", b" "), schema.explicit_for(parsed.keys()), schema.declared)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
        return f"the record does not convert to the dataset's schema: {exc} (schema {schema.name})"
    return f"the record does not convert to the dataset's schema (schema {schema.name})"


def json_type(value: object) -> str:
    """A JSON value's type, in JSON's words (`integer` and `float` for the two kinds of number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def mismatch(value: object, arrow_type: pa.DataType, path: str) -> str | None:
    """Why `value` (not null) does not fit `arrow_type`, naming `path`, the expected type and the
    value's JSON type; None when it fits. A re-check of one value, only to word the error."""
    why = _mismatch_here(value, arrow_type)
    if why is not None:
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return f"field {path!r}: expected {type_name(arrow_type)}, got {json_type(value)} {shown}{why}"
    if pa.types.is_struct(arrow_type) and isinstance(value, dict):
        for child in arrow_type:
            inner = value.get(child.name)
            if inner is None:
                if not child.nullable:
                    return f"required field {path + '.' + child.name!r} is missing or null"
                continue
            wrong = mismatch(inner, child.type, f"{path}.{child.name}")
            if wrong is not None:
                return wrong
    if pa.types.is_list(arrow_type) and isinstance(value, list):
        for index, item in enumerate(value):
            if item is not None and (wrong := mismatch(item, arrow_type.value_type, f"{path}[{index}]")):
                return wrong
    return None


def _mismatch_here(value: object, arrow_type: pa.DataType) -> str | None:
    """ "" when `value` is of the wrong JSON type, ", <why>" when it is of the right type but does not
    convert (out of range, not a time), None when it fits (nested values are checked by the caller)."""
    if pa.types.is_null(arrow_type):
        return None  # pending: any value shows the type
    if pa.types.is_integer(arrow_type):
        if not isinstance(value, int) or isinstance(value, bool):
            return ""
        bits = arrow_type.bit_width
        return None if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else ", out of range"
    if pa.types.is_floating(arrow_type):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else ""
    if pa.types.is_boolean(arrow_type):
        return None if isinstance(value, bool) else ""
    if pa.types.is_string(arrow_type):
        return None if isinstance(value, str) else ""
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        if not isinstance(value, str):
            return ""
        explicit = pa.schema([pa.field("v", arrow_type)])
        if _read_json(json.dumps({"v": value}).encode(), explicit, True) is None:
            return ", not an ISO-8601 time" if pa.types.is_timestamp(arrow_type) else ", not an ISO-8601 date"
        return None
    if pa.types.is_struct(arrow_type):
        return None if isinstance(value, dict) else ""
    if pa.types.is_list(arrow_type):
        return None if isinstance(value, list) else ""
    return None
