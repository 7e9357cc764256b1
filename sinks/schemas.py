"""Dataset schemas: the declared Parquet columns of a dataset, or the rule that infers them.

Like Firehose's record format conversion, a delivery stream reads JSON records into typed columns.
Firehose takes the columns from a Glue table; tidelake takes them from the delivery stream's config:

- `schema = "clickstream"`: the raw event of `core.events.CLICKSTREAM_FIELDS`;
- `[[fields]] name/type/nullable`: declared columns; fields a record has beyond them are ignored;
- `schema = "infer"` (the default for `analytics.*` topics): columns are named by rule and the rest
  is inferred from the records (see `infer_type`). New fields that appear later are added as
  optional columns; older files simply lack them and DuckDB's `union_by_name` reads both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from core.errors import ConfigError
from core.events import CLICKSTREAM_FIELDS

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
BUILTIN_SCHEMAS = ("clickstream", "infer")

#: Inference rule for analytics rows, by field name (first match wins); other fields: JSON's type.
NAME_RULES: tuple[tuple[re.Pattern[str], pa.DataType], ...] = (
    (re.compile(r"^(window_start|window_end|.*_time|.*_at)$"), pa.timestamp("us", "UTC")),
    (re.compile(r"^(count|count_.*|.*_count)$"), pa.int64()),
    (re.compile(r"^(sum|avg|min|max|stddev|mean|anomaly)_.*$|^(anomaly_score|score|rate)$"), pa.float64()),
)


def type_from_name(name: str) -> pa.DataType:
    try:
        return TYPES[name.strip()]
    except KeyError:
        msg = f"unknown column type {name!r}; use one of {', '.join(TYPES)}"
        raise ConfigError(msg) from None


def infer_type(name: str) -> pa.DataType | None:
    """The type the naming rule gives a field of an analytics row, or None to infer it from JSON."""
    for pattern, arrow_type in NAME_RULES:
        if pattern.match(name):
            return arrow_type
    return None


@dataclass
class DatasetSchema:
    """The columns of a dataset. `declared` schemas are fixed; inferred ones grow with new fields."""

    fields: list[pa.Field]
    declared: bool = True
    name: str = "declared"
    _rules: bool = field(default=False, repr=False)

    @classmethod
    def clickstream(cls) -> DatasetSchema:
        fields = [pa.field(n, type_from_name(t), nullable=null) for n, t, null in CLICKSTREAM_FIELDS]
        return cls(fields, declared=True, name="clickstream")

    @classmethod
    def inferred(cls) -> DatasetSchema:
        return cls([], declared=False, name="infer", _rules=True)

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
        return pa.schema(self.fields)

    def explicit_for(self, names: Iterable[str]) -> pa.Schema:
        """The explicit schema to read a batch with: known columns plus rule types for new names."""
        if self.declared:
            return self.arrow
        known = {f.name for f in self.fields}
        extra = []
        for name in names:
            if name not in known and (rule := infer_type(name)) is not None:
                extra.append(pa.field(name, rule))
                known.add(name)
        return pa.schema([*self.fields, *extra])

    def learn(self, table_schema: pa.Schema) -> None:
        """Add the columns an inferred dataset has just seen for the first time (all optional)."""
        if self.declared:
            return
        known = {f.name for f in self.fields}
        for column in table_schema:
            if column.name not in known and not pa.types.is_null(column.type):
                self.fields.append(pa.field(column.name, column.type, nullable=True))
                known.add(column.name)

    def conform(self, table: pa.Table) -> pa.Table:
        """`table` with the dataset's known columns in their order (missing optional ones as nulls)."""
        if self.declared:
            return table.select([f.name for f in self.fields])
        columns, names = [], []
        for column in self.fields:
            if column.name in table.column_names:
                columns.append(table.column(column.name))
            else:
                columns.append(pa.nulls(table.num_rows, column.type))
            names.append(column.name)
        return pa.table(columns, names=names)
