"""Dataset schemas: the declared Parquet columns of a dataset, or the rule that infers them.

Like Firehose's record format conversion, a delivery stream reads JSON records into typed columns.
Firehose takes the columns from a Glue table; tidelake takes them from the delivery stream's config:

- `schema = "clickstream"`: the raw event of `core.events.CLICKSTREAM_FIELDS`;
- `schema = "late-events"`: what stream apps write to `analytics.late-events` (`LATE_EVENT_FIELDS`);
- `schema = "error-output"`: the error rows of a dead-letter stream (`sinks.error_records.ERROR_SCHEMA`);
- `[[fields]] name/type/nullable`: declared columns; fields a record has beyond them are ignored;
- `schema = "infer"` (the analytics rows of six apps, each with its own columns): columns are typed
  by name where a rule says so (`NAME_RULES`), else by the first JSON value that is not null.

An inferred schema evolves as a Glue table updated by a crawler would (add columns, widen types):

- a null never fixes a type. A field (or a nested field of an object) seen only as null stays
  *pending* (Arrow's `null` type in `fields`) until a value shows its type; a file written meanwhile
  holds it as a string column of nulls (`written_type`);
- a new field becomes a new optional column; files written before simply lack it;
- an integer field that meets a fraction widens to float64 from then on (older files keep int64);
- any other conflict (a string where numbers were) is the record's `format-conversion-failed` error.

DuckDB reads files of different generations with `union_by_name` (int64 + float64 -> DOUBLE, a
missing column -> NULL). The schema lives for one run: a restarted stream infers again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import ConfigError
from core.events import CLICKSTREAM_FIELDS
from core.late_events import LATE_EVENT_FIELDS as LATE_EVENT_CONTRACT

#: Type names that a config may use, and their Arrow types.
TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "float32": pa.float32(),
    "date32": pa.date32(),
    "timestamp[us, UTC]": pa.timestamp("us", "UTC"),
    "timestamp": pa.timestamp("us", "UTC"),
}
CLICKSTREAM = "clickstream"
LATE_EVENTS = "late-events"
ERROR_OUTPUT = "error-output"
INFER = "infer"
BUILTIN_SCHEMAS = (CLICKSTREAM, LATE_EVENTS, ERROR_OUTPUT, INFER)
_UTC_US = pa.timestamp("us", "UTC")
#: Written in place of a type that is still pending (only nulls seen so far).
PENDING_WRITTEN_AS = pa.string()

#: Inference rule for analytics rows, by field name (first match wins); other fields: JSON's type.
NAME_RULES: tuple[tuple[re.Pattern[str], pa.DataType], ...] = (
    (re.compile(r"^(window_start|window_end|.*_time|.*_at)$"), _UTC_US),
    (re.compile(r"^(count|count_.*|.*_count)$"), pa.int64()),
    (re.compile(r"^(sum|avg|min|max|stddev|mean|anomaly)_.*$|^(anomaly_score|score|rate)$"), pa.float64()),
)


def type_from_name(name: str) -> pa.DataType:
    try:
        return TYPES[name.strip()]
    except KeyError:
        msg = f"unknown column type {name!r}; use one of {', '.join(TYPES)}"
        raise ConfigError(msg) from None


def type_name(arrow_type: pa.DataType) -> str:
    """A type as configs spell it (`int32`, `timestamp[us, UTC]`, `struct<a: string>`)."""
    if pa.types.is_timestamp(arrow_type):
        return f"timestamp[{arrow_type.unit}{', ' + arrow_type.tz if arrow_type.tz else ''}]"
    if pa.types.is_struct(arrow_type):
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in arrow_type) + ">"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    return {"double": "float64", "float": "float32"}.get(str(arrow_type), str(arrow_type))


def infer_type(name: str) -> pa.DataType | None:
    """The type the naming rule gives a field of an analytics row, or None to infer it from JSON."""
    for pattern, arrow_type in NAME_RULES:
        if pattern.match(name):
            return arrow_type
    return None


def _clickstream_fields(*, all_nullable: bool = False) -> list[pa.Field]:
    return [
        pa.field(n, type_from_name(t), nullable=null or all_nullable) for n, t, null in CLICKSTREAM_FIELDS
    ]


#: A late event, as every stream app writes it to `analytics.late-events`: the contract declared in
#: core/late_events.py, its `event` the clickstream event's fields (core/events.py), all optional;
#: fields an event of another source has beyond them are ignored, as with any declared schema
#: (`topic`, `partition` and `offset` say where to find it whole).
LATE_EVENT_FIELDS: tuple[pa.Field, ...] = tuple(
    pa.field(
        name,
        pa.struct(_clickstream_fields(all_nullable=True))
        if type_name == "clickstream"
        else type_from_name(type_name),
        nullable=nullable,
    )
    for name, type_name, nullable in LATE_EVENT_CONTRACT
)


# -- type algebra of inferred schemas ---------------------------------------------------------------


def is_pending(arrow_type: pa.DataType) -> bool:
    """Only nulls seen so far: a null, an empty object, or a list of those."""
    if pa.types.is_null(arrow_type):
        return True
    if pa.types.is_struct(arrow_type):
        return arrow_type.num_fields == 0
    return False


def _normalized(seen: pa.DataType) -> pa.DataType:
    """A type Arrow inferred, as the schema keeps it: every timestamp in UTC microseconds,
    structs and lists normalized inside."""
    if pa.types.is_timestamp(seen):
        return _UTC_US
    if pa.types.is_struct(seen):
        return pa.struct([pa.field(f.name, _normalized(f.type)) for f in seen])
    if pa.types.is_list(seen) or pa.types.is_large_list(seen):
        return pa.list_(_normalized(seen.value_type))
    return seen


def merge_types(known: pa.DataType, seen: pa.DataType) -> pa.DataType | None:
    """The type a field has after a batch showed `seen` for it; None if the two conflict.
    Nulls never decide; int widens to float64; objects merge field by field (new ones appended)."""
    seen = _normalized(seen)
    if pa.types.is_null(known):
        return seen
    if pa.types.is_null(seen) or known.equals(seen):
        return known
    if pa.types.is_integer(known) and pa.types.is_integer(seen):
        return known if known.bit_width >= seen.bit_width else seen
    if _is_number(known) and _is_number(seen):
        return pa.float64()
    if pa.types.is_struct(known) and pa.types.is_struct(seen):
        merged: list[pa.Field] = []
        for child in known:
            index = seen.get_field_index(child.name)
            if index < 0:
                merged.append(child)
                continue
            kind = merge_types(child.type, seen.field(index).type)
            if kind is None:
                return None
            merged.append(pa.field(child.name, kind))
        names = {f.name for f in known}
        merged.extend(pa.field(f.name, f.type) for f in seen if f.name not in names)
        return pa.struct(merged)
    if pa.types.is_list(known) and pa.types.is_list(seen):
        item = merge_types(known.value_type, seen.value_type)
        return None if item is None else pa.list_(item)
    return None


def _is_number(arrow_type: pa.DataType) -> bool:
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def written_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a file stores: a pending type (nulls only so far) as a string, also inside objects
    and lists (Parquet has no null columns, nor objects without fields)."""
    if is_pending(arrow_type):
        return PENDING_WRITTEN_AS
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(f.name, written_type(f.type), f.nullable) for f in arrow_type])
    if pa.types.is_list(arrow_type):
        return pa.list_(written_type(arrow_type.value_type))
    return arrow_type


def reading_type(arrow_type: pa.DataType, *, loose_numbers: bool = False) -> pa.DataType | None:
    """The part of a known type that Arrow's reader is told (None: let it infer the whole field).
    Pending parts are left out so that a value shows their type; with `loose_numbers`, integers
    are left out too, so that a fraction shows as float64 instead of failing the read."""
    if is_pending(arrow_type) or (loose_numbers and pa.types.is_integer(arrow_type)):
        return None
    if pa.types.is_struct(arrow_type):
        children = []
        for child in arrow_type:
            kind = reading_type(child.type, loose_numbers=loose_numbers)
            if kind is not None:
                children.append(pa.field(child.name, kind))
        return pa.struct(children) if children else None
    if pa.types.is_list(arrow_type):
        item = reading_type(arrow_type.value_type, loose_numbers=loose_numbers)
        return None if item is None else pa.list_(item)
    return arrow_type


def conform_array(array: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """`array` as `target`: nulls of a missing nested field added, nulls cast, ints widened."""
    if array.type.equals(target):
        return array
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([conform_array(chunk, target) for chunk in array.chunks], target)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), target)  # also a pending column written as strings
    if pa.types.is_struct(array.type) and array.type.num_fields == 0:  # {} seen, nothing more yet
        return pc.cast(pc.if_else(array.is_valid(), "{}", None), target)
    if pa.types.is_struct(target) and pa.types.is_struct(array.type):
        flat = array.flatten()  # children offset-adjusted, with the parent's nulls applied
        children = []
        for child in target:
            own = array.type.get_field_index(child.name)
            values = flat[own] if own >= 0 else pa.nulls(len(array), child.type)
            children.append(conform_array(values, child.type))
        mask = array.is_null() if array.null_count else None
        return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    if pa.types.is_list(target) and pa.types.is_list(array.type):
        values = conform_array(array.values, target.value_type)
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, values, type=target, mask=mask)
    return pc.cast(array, target)


@dataclass
class DatasetSchema:
    """The columns of a dataset. `declared` schemas are fixed; inferred ones evolve (see the module
    docstring): `fields` then holds what is known, with Arrow's `null` type where a field is pending."""

    fields: list[pa.Field]
    declared: bool = True
    name: str = "declared"

    @classmethod
    def clickstream(cls) -> DatasetSchema:
        return cls(_clickstream_fields(), declared=True, name=CLICKSTREAM)

    @classmethod
    def late_events(cls) -> DatasetSchema:
        return cls(list(LATE_EVENT_FIELDS), declared=True, name=LATE_EVENTS)

    @classmethod
    def error_output(cls) -> DatasetSchema:
        from sinks.error_records import ERROR_SCHEMA

        return cls(list(ERROR_SCHEMA), declared=True, name=ERROR_OUTPUT)

    @classmethod
    def inferred(cls) -> DatasetSchema:
        return cls([], declared=False, name=INFER)

    @classmethod
    def builtin(cls, name: str) -> DatasetSchema:
        makers = {
            CLICKSTREAM: cls.clickstream,
            LATE_EVENTS: cls.late_events,
            ERROR_OUTPUT: cls.error_output,
            INFER: cls.inferred,
        }
        if name not in makers:
            msg = f"schema {name!r}: use one of {', '.join(BUILTIN_SCHEMAS)} or declare [[fields]]"
            raise ConfigError(msg)
        return makers[name]()

    @classmethod
    def from_declared(cls, columns: Iterable[dict[str, object]]) -> DatasetSchema:
        fields = []
        for column in columns:
            name = str(column.get("name", ""))
            if not name:
                msg = f"schema column {column!r} has no name"
                raise ConfigError(msg)
            fields.append(
                pa.field(
                    name,
                    type_from_name(str(column.get("type", "string"))),
                    bool(column.get("nullable", True)),
                )
            )
        if len({f.name for f in fields}) != len(fields):
            msg = f"schema declares a column twice: {[f.name for f in fields]}"
            raise ConfigError(msg)
        return cls(fields, declared=True)

    @property
    def arrow(self) -> pa.Schema:
        """The columns a file of this dataset holds now (pending ones as strings)."""
        if self.declared:
            return pa.schema(self.fields)
        return pa.schema([pa.field(f.name, written_type(f.type), f.nullable) for f in self.fields])

    def known_type(self, name: str) -> pa.DataType | None:
        """The type of column `name` as far as it is known (`null` while pending), None if unseen."""
        for column in self.fields:
            if column.name == name:
                return column.type
        return None

    def explicit_for(self, names: Iterable[str], *, loose_numbers: bool = False) -> pa.Schema:
        """The explicit schema to read a batch with: the known part of each column, plus the rule's
        type for `names` that are new or still pending (see `reading_type` for `loose_numbers`)."""
        if self.declared:
            return self.arrow
        explicit: list[pa.Field] = []
        told: set[str] = set()
        for column in self.fields:
            kind = reading_type(column.type, loose_numbers=loose_numbers)
            if kind is not None:
                explicit.append(pa.field(column.name, kind))
                told.add(column.name)
        for name in names:
            known = self.known_type(name)
            rule = None if name in told else infer_type(name)
            if rule is not None and (known is None or is_pending(known)):
                explicit.append(pa.field(name, rule))
                told.add(name)
        return pa.schema(explicit)

    def merged(self, table_schema: pa.Schema) -> list[pa.Field] | None:
        """The columns after a batch read as `table_schema`; None if a column conflicts."""
        columns = list(self.fields)
        index = {f.name: i for i, f in enumerate(columns)}
        for seen in table_schema:
            at = index.get(seen.name)
            if at is None:
                columns.append(pa.field(seen.name, _normalized(seen.type), nullable=True))
                index[seen.name] = len(columns) - 1
                continue
            kind = merge_types(columns[at].type, seen.type)
            if kind is None:
                return None
            columns[at] = pa.field(seen.name, kind, nullable=True)
        return columns

    def learn(self, table_schema: pa.Schema) -> bool:
        """Take in what a batch read as `table_schema` shows; False (nothing learnt) on a conflict."""
        if self.declared:
            return True
        columns = self.merged(table_schema)
        if columns is None:
            return False
        self.fields = columns
        return True

    def conform(self, table: pa.Table) -> pa.Table:
        """`table` with the dataset's columns in their order and written types (a column the table
        lacks as nulls; nested fields it lacks as nulls; pending ones as strings; ints widened)."""
        if self.declared:
            return table.select([f.name for f in self.fields])
        target = self.arrow
        columns = []
        for column in target:
            if column.name in table.column_names:
                columns.append(conform_array(table.column(column.name), column.type))
            else:
                columns.append(pa.nulls(table.num_rows, column.type))
        return pa.table(columns, schema=target)
