"""The input of a KDA SQL program: `SOURCE_SQL_STREAM_001` read from a Kafka topic of JSON records.

Its columns are the JSON fields by their exact names (`"page"` reads field `page`), or, with an
input schema, the columns of KDA's application input configuration (AWS, Kinesis Data Analytics
API, `InputSchema.RecordColumns`: `Name`, `SqlType`, `Mapping` a JSONPath such as `$.page`):

    {"RecordColumns": [{"Name": "page", "SqlType": "VARCHAR(256)", "Mapping": "$.page"}, ...]}

(a bare list of columns is read too). A record whose field does not fit its column's type is
rejected (RowError): it goes to the DLQ with the column and the reason, as KDA sent it to its
`error_stream`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from stream_apps.kda_sql.columns import SqlType, parse_type
from stream_apps.kda_sql.functions import RowError
from stream_apps.kda_sql.refusals import SourceText

SOURCE_STREAM = "SOURCE_SQL_STREAM_001"
DESTINATION_STREAM = "DESTINATION_SQL_STREAM"
_PATH = re.compile(r"^\$((?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\['[^']+'\])+)$")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']+)'\]")

#: The DLQ error types (core/dead_letters.py's `error.type`) of rejected records.
SCHEMA_MISMATCH = "input-schema-mismatch"
EVALUATION_FAILED = RowError.error_type


class RejectedRecord(RowError):
    """A record that does not fit the input schema."""

    error_type = SCHEMA_MISMATCH


@dataclass(frozen=True)
class InputColumn:
    name: str
    type: SqlType
    path: tuple[str | int, ...]

    def read(self, event: dict[str, Any]) -> Any:
        value: Any = event
        for step in self.path:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and step < len(value) else None
            else:
                value = value.get(step) if isinstance(value, dict) else None
            if value is None:
                return None
        try:
            return self.type.coerce(value)
        except ValueError as exc:
            msg = f"column {self.name!r} ({self.type.spelling}): {exc}"
            raise RejectedRecord(msg) from exc


def _path(text: str, where: str) -> tuple[str | int, ...]:
    match = _PATH.match(text)
    if not match:
        msg = f"{where}: mapping {text!r} is not a JSONPath tidelake reads; write $.field or $.a.b[0]"
        raise ConfigError(msg)
    return tuple(int(i) if i else (a or b) for a, i, b in _STEP.findall(match.group(1)))


def load_input_schema(path: Path) -> tuple[InputColumn, ...]:
    """Read an input schema file (module docstring); ConfigError names the file and the column."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        msg = f'input schema {path}: {exc}; write JSON like {{"RecordColumns": [{{"Name": ..., "SqlType": ..., "Mapping": ...}}]}}'
        raise ConfigError(msg) from exc
    columns = data.get("RecordColumns") if isinstance(data, dict) else data
    if not isinstance(columns, list) or not columns:
        msg = f"input schema {path}: expected a non-empty RecordColumns list"
        raise ConfigError(msg)
    out = []
    for i, column in enumerate(columns):
        where = f"input schema {path}, column {i + 1}"
        if (
            not isinstance(column, dict)
            or not isinstance(column.get("Name"), str)
            or not isinstance(column.get("SqlType"), str)
        ):
            msg = f"{where}: give Name and SqlType (and Mapping, default $.Name)"
            raise ConfigError(msg)
        name = column["Name"]
        sql_type = parse_type(SourceText(column["SqlType"], where), column["SqlType"], 0)
        out.append(InputColumn(name, sql_type, _path(str(column.get("Mapping") or f"$.{name}"), where)))
    return tuple(out)
