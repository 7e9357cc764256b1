"""CSV and JSON-lines rows into records: each keeps its own fields plus `event_id` and `event_time`.

The event time comes from `--time-field` (or the first of `TIME_FIELD_GUESSES` present), in any form
`producers.timestamps` recognises; the key from `--key-field` (none: Kafka spreads the records).

CSV is read by Python's `csv` module (RFC 4180: quoted fields, `""` inside quotes, line breaks
inside quotes). Header names follow DuckDB's `read_csv`: spaces around a name are trimmed, an empty
name becomes `column<i>` (its 0-based position, zero-padded to the digits of the last position),
and a name already taken (ignoring case) gets `_1`, `_2`, ... (the first that is free).
"""

from __future__ import annotations

import csv
import io

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

    def record(self, row: dict, raw: bytes, line_no: int, *, clean: bool = False) -> Record:
        """The record of a row (`clean`: the row has none of the `RESERVED` names)."""
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
        fields = row if clean else {name: value for name, value in row.items() if name not in RESERVED}
        return Record(line_no, event_id_of(self.source, line_no, raw), time_us, key, fields)


class JsonLinesParser(RowParser):
    """One JSON object per line."""

    def parse(self, line: str, raw: bytes, line_no: int) -> Record:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"not JSON: {exc}", error_type=MALFORMED) from exc
        if not isinstance(row, dict):
            msg = f"a JSON line must be an object, got {_json_type(row)}"
            raise RecordError(msg, error_type=MALFORMED)
        return self.record(row, raw, line_no)


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type (`orjson` gives no other types)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


class CsvParser(RowParser):
    """Delimited rows under a header (the file's first record), with `delimiter` between fields."""

    def __init__(
        self,
        source: str,
        header: list[str],
        *,
        delimiter: str = ",",
        time_field: str | None = None,
        key_field: str | None = None,
    ) -> None:
        super().__init__(source, time_field=time_field, key_field=key_field)
        self.header = header
        self.delimiter = delimiter
        self._clean = not any(name in RESERVED for name in header)

    def parse(self, line: str, raw: bytes, line_no: int) -> Record:
        """One record that is one line (the agent reads line by line)."""
        try:
            values = next(csv.reader([line], delimiter=self.delimiter))
        except (csv.Error, StopIteration) as exc:
            raise RecordError(f"not a CSV row: {exc}", error_type=MALFORMED) from exc
        return self.parse_values(values, raw, line_no)

    def parse_values(self, values: list[str], raw: bytes, line_no: int) -> Record:
        """A record from the fields the CSV reader gave (`raw`: its bytes, all its lines)."""
        if len(values) != len(self.header):
            msg = f"{len(values)} values for {len(self.header)} header columns"
            raise RecordError(msg, error_type=MALFORMED)
        return self.record(dict(zip(self.header, values, strict=True)), raw, line_no, clean=self._clean)


#: Delimiters a CSV file is sniffed for, in order of preference on a tie.
DELIMITERS = (",", "\t", ";", "|")


def sniff_delimiter(sample: str, complete: bool = True) -> str:
    """The delimiter of a CSV sample (its first lines; `complete`: the sample is the whole file).

    Like DuckDB's sniffer, a candidate must split every sampled record into the same number of
    fields, more than one; the most fields wins, ties go by the order of `DELIMITERS`. When no
    candidate is consistent, the one that splits the header into most fields; else a comma.
    """
    consistent: list[tuple[int, int]] = []  # (-fields, order)
    widest: list[tuple[int, int]] = []
    for order, delimiter in enumerate(DELIMITERS):
        if delimiter not in sample:
            continue
        try:
            rows = [row for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not complete and len(rows) > 1:
            rows.pop()  # may be cut short by the end of the sample
        width = len(rows[0]) if rows else 0
        if width < 2:
            continue
        widest.append((-width, order))
        if all(len(row) == width for row in rows):
            consistent.append((-width, order))
    for ranked in (consistent, widest):
        if ranked:
            return DELIMITERS[min(ranked)[1]]
    return ","


def column_names(cells: list[str]) -> list[str]:
    """Header cells to distinct column names, as DuckDB's CSV reader names them (see the module doc)."""
    digits = len(str(len(cells) - 1))
    taken: set[str] = set()
    names = []
    for position, cell in enumerate(cells):
        name = cell.strip(" ") or f"column{position:0{digits}d}"
        candidate, suffix = name, 0
        while candidate.lower() in taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        taken.add(candidate.lower())
        names.append(candidate)
    return names


def csv_header(line: str, delimiter: str = ",") -> list[str]:
    """The column names of a header line (a leading byte-order mark is not part of the first name)."""
    try:
        cells = next(csv.reader([line.removeprefix("\ufeff")], delimiter=delimiter), [])
    except csv.Error as exc:
        msg = f"the first line of a CSV file must be its header, got {line[:200]!r}: {exc}"
        raise RecordError(msg, error_type=MALFORMED) from exc
    if not cells:
        msg = "the first line of a CSV file must be its header, got an empty line"
        raise RecordError(msg, error_type=MALFORMED)
    return column_names(cells)
