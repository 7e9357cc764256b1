"""CSV and JSON-lines rows into records: each keeps its own fields plus `event_id` and `event_time`.

The event time comes from `--time-field` (or the first of `TIME_FIELD_GUESSES` present), in any form
`producers.timestamps` recognises; the key from `--key-field` (none: Kafka spreads the records).
"""

from __future__ import annotations

import csv

import orjson

from core.errors import RecordError
from producers.records import BAD_TIME, MALFORMED, MISSING_KEY, Record, event_id_of
from producers.timestamps import parse_time

#: Field names tried, in order, when no --time-field is given.
TIME_FIELD_GUESSES = ("event_time", "timestamp", "@timestamp", "time", "ts", "datetime", "date")
#: Fields the published payload sets itself; a row's own values under these names are replaced.
RESERVED = ("event_id", "event_time")


class RowParser:
    """Shared by CSV and JSONL: a row (dict) to a record, with time and key taken from named fields."""

    def __init__(self, source: str, time_field: str | None = None, key_field: str | None = None) -> None:
        self.source = source
        self.time_field = time_field
        self.key_field = key_field

    def _time_field_of(self, row: dict) -> str:
        if self.time_field is not None:
            if self.time_field not in row:
                msg = (
                    f"no field {self.time_field!r} (the --time-field) in this row; fields: {sorted(row)[:10]}"
                )
                raise RecordError(msg, error_type=BAD_TIME)
            return self.time_field
        for name in TIME_FIELD_GUESSES:
            if name in row:
                return name
        msg = f"no event time: none of {list(TIME_FIELD_GUESSES)} in this row; name one with --time-field"
        raise RecordError(msg, error_type=BAD_TIME)

    def record(self, row: dict, raw: bytes, line_no: int) -> Record:
        time_field = self._time_field_of(row)
        try:
            time_us = parse_time(row[time_field])
        except ValueError as exc:
            raise RecordError(f"field {time_field!r}: {exc}", error_type=BAD_TIME) from exc
        key = None
        if self.key_field is not None:
            value = row.get(self.key_field)
            if value is None or value == "":
                msg = f"no value for the key field {self.key_field!r} (the --key-field) in this row"
                raise RecordError(msg, error_type=MISSING_KEY)
            key = value if isinstance(value, str) else orjson.dumps(value).decode()
        fields = {name: value for name, value in row.items() if name not in RESERVED}
        return Record(line_no, event_id_of(self.source, line_no, raw), time_us, key, fields)


class JsonLinesParser(RowParser):
    """One JSON object per line."""

    def parse(self, line: str, raw: bytes, line_no: int) -> Record:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"not JSON: {exc}", error_type=MALFORMED) from exc
        if not isinstance(row, dict):
            msg = f"a JSON line must be an object, got {type(row).__name__}"
            raise RecordError(msg, error_type=MALFORMED)
        return self.record(row, raw, line_no)


class CsvParser(RowParser):
    """Comma-separated rows under a header line (the file's first line)."""

    def __init__(self, source: str, header: list[str], **kwargs: str | None) -> None:
        super().__init__(source, **kwargs)
        self.header = header

    def parse(self, line: str, raw: bytes, line_no: int) -> Record:
        try:
            values = next(csv.reader([line]))
        except (csv.Error, StopIteration) as exc:
            raise RecordError(f"not a CSV row: {exc}", error_type=MALFORMED) from exc
        if len(values) != len(self.header):
            msg = f"{len(values)} values for {len(self.header)} header columns"
            raise RecordError(msg, error_type=MALFORMED)
        return self.record(dict(zip(self.header, values, strict=True)), raw, line_no)


def csv_header(line: str) -> list[str]:
    header = next(csv.reader([line]), [])
    if not header or any(not name for name in header) or len(set(header)) != len(header):
        msg = f"the first line of a CSV file must be a header of distinct names, got {line[:200]!r}"
        raise RecordError(msg, error_type=MALFORMED)
    return header
