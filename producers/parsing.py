"""Files into records and rejects, without Kafka: the parser API that replay, the agent, tests and
the DuckDB oracle share.

    parsed = parse_file("data/zanbil-access-10k/access-10k.log")
    parsed.records[0].to_event()      # a core.events.ClickstreamEvent
    parsed.rejects                    # lines that would go to the DLQ, with why

Formats: `combined` (Apache/nginx combined or common log, optional X-Forwarded-For field), `csv`
(header record first; comma, tab, `;` or `|` separated), `jsonl` (one JSON object a line); `auto`
picks by extension, then by content.

Files as people have them: a UTF-8 byte-order mark at the start is dropped (it is not part of the
first line's record or id), CRLF line ends are read like LF, and a CSV record may span several
lines inside quotes: it is one record, numbered by its first line, its id hashed over the bytes of
all its lines. Blank lines are skipped in CSV and JSON lines (as pandas, DuckDB and jq do) and
rejected as `empty-line` in access logs, where every request is one line.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from core.errors import ConfigError, RecordError
from producers.accesslog import AccessLogParser, looks_like_access_log
from producers.records import EMPTY, MALFORMED, NOT_UTF8, TOO_LARGE, Record, Reject
from producers.tabular import CsvParser, JsonLinesParser, column_names, csv_header, sniff_delimiter

FORMATS = ("auto", "combined", "csv", "jsonl")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
#: Extensions of tab-separated files (read as CSV with a tab delimiter, not sniffed).
_TAB_EXTENSIONS = (".tsv", ".tab")
#: Bytes of a too-large line kept in its reject (the DLQ must accept it).
REJECT_KEEP_BYTES = 64 * 1024
#: The UTF-8 byte-order mark that Excel and Windows tools write first.
BOM = b"\xef\xbb\xbf"
#: Bytes read from the start of a CSV file to find its delimiter and header.
SNIFF_BYTES = 64 * 1024
#: Bytes read at a time (rounded to whole lines).
BLOCK_BYTES = 4 * 1024 * 1024


class LineParser(Protocol):
    def parse(self, line: str, raw: bytes, line_no: int) -> Record: ...


@dataclass
class ParsedFile:
    """Everything in one file: records in file order, rejects in file order."""

    path: Path
    format: str
    source: str
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return len(self.records) + len(self.rejects)


def dataset_name(path: Path) -> str:
    """The `source` of a file's events: its folder's name when the folder has a SOURCE.md, else its stem."""
    path = Path(path)
    if (path.parent / "SOURCE.md").is_file():
        return path.parent.name
    return path.stem


def detect_format(path: Path, first_line: str | None = None) -> str:
    """`combined`, `csv` or `jsonl`, from the extension, else from the first non-empty line."""
    by_extension = _EXTENSIONS.get(Path(path).suffix.lower())
    if by_extension:
        return by_extension
    if first_line is None:
        first_line = first_text_line(path)
    first_line = first_line.removeprefix("\ufeff")
    if first_line.lstrip().startswith("{"):
        return "jsonl"
    if looks_like_access_log(first_line):
        return "combined"
    if any(delimiter in first_line for delimiter in (",", "\t", ";")):
        return "csv"
    msg = (
        f"cannot tell the format of {path} from its first line {first_line[:120]!r}; "
        f"pass --format {'|'.join(FORMATS[1:])}"
    )
    raise ConfigError(msg)


def first_text_line(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                text = raw.decode("utf-8", "replace").removeprefix("\ufeff").strip()
                if text:
                    return text
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}; check the path"
        raise ConfigError(msg) from exc
    return ""


def make_parser(
    fmt: str,
    source: str,
    *,
    header: str | None = None,
    time_field: str | None = None,
    key_field: str | None = None,
    delimiter: str | None = None,
) -> LineParser:
    """The line parser of a format (`header` is the CSV header line; without a `delimiter` the
    header's is sniffed)."""
    if fmt == "combined":
        if time_field:
            msg = "--time-field is for csv/jsonl; access logs carry their own time"
            raise ConfigError(msg)
        return AccessLogParser(source, key_field) if key_field else AccessLogParser(source)
    if fmt == "jsonl":
        return JsonLinesParser(source, time_field=time_field, key_field=key_field)
    if fmt == "csv":
        if header is None:
            msg = "a CSV file needs a header line"
            raise ConfigError(msg)
        header = header.removeprefix("\ufeff")
        delimiter = delimiter or sniff_delimiter(header)
        try:
            names = csv_header(header, delimiter)
        except RecordError as exc:
            raise ConfigError(str(exc)) from exc
        return CsvParser(source, names, delimiter=delimiter, time_field=time_field, key_field=key_field)
    msg = f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
    raise ConfigError(msg)


def parse_line(
    parser: LineParser, raw: bytes, line_no: int, source_file: str, max_line_bytes: int | None = None
) -> Record | Reject:
    """One raw line (without its newline) to a record, or a reject that says why."""
    if line_no == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
    if max_line_bytes is not None and len(raw) > max_line_bytes:
        msg = f"line of {len(raw):,} bytes is over the {max_line_bytes:,}-byte record limit (first {REJECT_KEEP_BYTES} kept)"
        return Reject(raw[:REJECT_KEEP_BYTES], line_no, TOO_LARGE, msg, source_file)
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8: byte {raw[exc.start]:#04x} at column {exc.start + 1}"
        return Reject(raw, line_no, NOT_UTF8, msg, source_file)
    if not line.strip():
        return Reject(raw, line_no, EMPTY, "empty line", source_file)
    try:
        return parser.parse(line, raw, line_no)
    except RecordError as exc:
        return Reject(raw, line_no, exc.error_type, exc.message, source_file)
    except (ValueError, TypeError) as exc:  # a parser bug on odd input must not stop the run
        return Reject(raw, line_no, MALFORMED, f"{exc.__class__.__name__}: {exc}", source_file)


def split_lines(data: bytes) -> list[bytes]:
    """Lines without their `\\n` or `\\r\\n`; a final newline does not make an empty last line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def iter_parsed(
    path: Path,
    *,
    fmt: str = "auto",
    source: str | None = None,
    time_field: str | None = None,
    key_field: str | None = None,
    max_line_bytes: int | None = None,
) -> tuple[str, str, Iterator[Record | Reject]]:
    """(format, source, records-or-rejects in file order), reading the file as it goes."""
    path = Path(path)
    if not path.is_file():
        msg = f"no file at {path}; give the path of a log, CSV or JSONL file (samples are in data/)"
        raise ConfigError(msg)
    if fmt not in FORMATS:
        msg = f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
        raise ConfigError(msg)
    first = first_text_line(path)
    chosen = detect_format(path, first) if fmt == "auto" else fmt
    name = source or dataset_name(path)
    if chosen == "csv":
        csv_parser = _csv_parser(path, name, time_field=time_field, key_field=key_field)
        return chosen, name, _parse_csv(path, csv_parser, max_line_bytes)
    parser = make_parser(chosen, name, header=first, time_field=time_field, key_field=key_field)
    return chosen, name, _parse_lines(path, parser, chosen == "jsonl", max_line_bytes)


def _csv_parser(path: Path, source: str, **fields: str | None) -> CsvParser:
    """The parser of a CSV file: delimiter by extension or sniffed, names from its header record."""
    with open(path, "rb") as handle:
        sample = handle.read(SNIFF_BYTES)
        complete = not handle.read(1)
    if not complete:
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    text = sample.decode("utf-8", "replace").removeprefix("\ufeff")
    tabs = path.suffix.lower() in _TAB_EXTENSIONS
    delimiter = "\t" if tabs else sniff_delimiter(text, complete)
    try:
        header = next((row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row), None)
    except csv.Error as exc:
        msg = f"cannot read the header of {path}: {exc}; the first record of a CSV file must be its header"
        raise ConfigError(msg) from exc
    if header is None:
        msg = f"{path} has no header line; the first record of a CSV file must be its header"
        raise ConfigError(msg)
    names = column_names(header)
    for flag, named in (("--time-field", fields.get("time_field")), ("--key-field", fields.get("key_field"))):
        if named is not None and named not in names:
            msg = f"{flag} {named!r} is not a field of {path}; its fields: {', '.join(names)}"
            raise ConfigError(msg)
    return CsvParser(source, names, delimiter=delimiter, **fields)


def _parse_lines(
    path: Path, parser: LineParser, skip_blank: bool, max_line_bytes: int | None
) -> Iterator[Record | Reject]:
    source_file = str(path)
    line_no = 0
    with open(path, "rb") as handle:
        for chunk in _chunks(handle):
            for raw in chunk:
                line_no += 1
                if skip_blank and (not raw or raw.isspace()):
                    continue
                yield parse_line(parser, raw, line_no, source_file, max_line_bytes)


def _parse_csv(path: Path, parser: CsvParser, max_line_bytes: int | None) -> Iterator[Record | Reject]:
    """The records of a CSV file after its header, read by one `csv.reader` over the whole file, so
    a quoted field may hold line breaks; `reader.line_num` tells which lines each record took."""
    source_file = str(path)
    with open(path, "rb") as handle:
        lines = _PhysicalLines(handle)
        reader = csv.reader(lines.texts(), delimiter=parser.delimiter)
        first = 1  # line number of the next record's first line
        header_pending = True
        while True:
            error: csv.Error | None = None
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader goes on with the next line
                error, values = exc, []
            line_no, first = first, reader.line_num + 1
            raw = lines.take(line_no, reader.line_num)
            if error is None and (not raw or raw.isspace()):
                continue  # a blank line, as pandas and DuckDB skip it
            if header_pending:
                header_pending = False
                continue
            if max_line_bytes is not None and len(raw) > max_line_bytes:
                msg = f"record of {len(raw):,} bytes is over the {max_line_bytes:,}-byte record limit (first {REJECT_KEEP_BYTES} kept)"
                yield Reject(raw[:REJECT_KEEP_BYTES], line_no, TOO_LARGE, msg, source_file)
                continue
            if lines.not_utf8:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    msg = f"not UTF-8: byte {raw[exc.start]:#04x} at byte {exc.start + 1} of the record"
                    yield Reject(raw, line_no, NOT_UTF8, msg, source_file)
                    continue
            if error is not None:
                yield Reject(raw, line_no, MALFORMED, _csv_error_message(error), source_file)
                continue
            try:
                yield parser.parse_values(values, raw, line_no)
            except RecordError as exc:
                yield Reject(raw, line_no, exc.error_type, exc.message, source_file)
            except (ValueError, TypeError) as exc:  # a parser bug on odd input must not stop the run
                yield Reject(raw, line_no, MALFORMED, f"{exc.__class__.__name__}: {exc}", source_file)


def _csv_error_message(error: csv.Error) -> str:
    if "new-line character" in str(error):  # csv's own text suggests a Python-side fix
        return "not a CSV record: a carriage return (CR) inside an unquoted field; quote the field"
    return f"not a CSV record: {error}"


class _PhysicalLines:
    """A file's lines read in blocks: as text for the CSV reader, as bytes for each record's raw.

    Lines are kept from the first line of the record being read; `take` hands a record's bytes
    over and lets the lines before it go when the next block is read.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.lines: list[bytes] = []  # raw lines, a CR before the LF kept, numbered from `first_no`
        self.first_no = 1
        self.keep_from = 1
        self.not_utf8 = False  # some block was not UTF-8: records must be checked one by one

    def texts(self) -> Iterator[str]:
        """The decoded lines with their line ends (for `csv.reader`), the BOM dropped."""
        return itertools.chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[io.StringIO]:
        start = True
        for block in _blocks(self.handle, BLOCK_BYTES):
            if (drop := self.keep_from - self.first_no) > 0:
                del self.lines[:drop]
                self.first_no += drop
            lines = block.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            self.lines.extend(lines)
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError:
                text = block.decode("utf-8", "surrogateescape")
                self.not_utf8 = True
            if start:
                text, start = text.removeprefix("\ufeff"), False
            yield io.StringIO(text)  # iterates by "\n" only, like the split above

    def take(self, first: int, last: int) -> bytes:
        """The bytes of lines `first`..`last` as in the file, without the last line's end."""
        self.keep_from = last + 1
        chosen = self.lines[first - self.first_no : last - self.first_no + 1]
        raw = chosen[0] if len(chosen) == 1 else b"\n".join(chosen)
        if first == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        return raw[:-1] if raw.endswith(b"\r") else raw


def _blocks(handle: BinaryIO, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The file in blocks of whole lines (the last may lack its newline)."""
    tail = b""
    while block := handle.read(size):
        data = tail + block
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data
            continue
        tail = data[cut + 1 :]
        yield data[: cut + 1]
    if tail:
        yield tail


def _chunks(handle: BinaryIO) -> Iterable[list[bytes]]:
    for block in _blocks(handle, BLOCK_BYTES):
        yield split_lines(block)


def parse_file(
    path: Path,
    *,
    fmt: str = "auto",
    source: str | None = None,
    time_field: str | None = None,
    key_field: str | None = None,
    max_line_bytes: int | None = None,
) -> ParsedFile:
    """A whole file parsed in memory: records and rejects, both in file order."""
    chosen, name, items = iter_parsed(
        path,
        fmt=fmt,
        source=source,
        time_field=time_field,
        key_field=key_field,
        max_line_bytes=max_line_bytes,
    )
    parsed = ParsedFile(Path(path), chosen, name)
    for item in items:
        if isinstance(item, Record):
            parsed.records.append(item)
        else:
            parsed.rejects.append(item)
    return parsed
