"""Files into records and rejects, without Kafka: the parser API that replay, the agent, tests and
the DuckDB oracle share.

    parsed = parse_file("data/zanbil-access-10k/access-10k.log")
    parsed.records[0].to_event()      # a core.events.ClickstreamEvent
    parsed.rejects                    # lines that would go to the DLQ, with why

Formats: `combined` (Apache/nginx combined or common log, optional X-Forwarded-For field), `csv`
(header line first), `jsonl` (one JSON object a line); `auto` picks by extension, then by content.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.errors import ConfigError, RecordError
from producers.accesslog import AccessLogParser, looks_like_access_log
from producers.records import EMPTY, MALFORMED, NOT_UTF8, TOO_LARGE, Record, Reject
from producers.tabular import CsvParser, JsonLinesParser, csv_header

FORMATS = ("auto", "combined", "csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
#: Bytes of a too-large line kept in its reject (the DLQ must accept it).
REJECT_KEEP_BYTES = 64 * 1024


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
    if first_line.lstrip().startswith("{"):
        return "jsonl"
    if looks_like_access_log(first_line):
        return "combined"
    if "," in first_line:
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
                text = raw.decode("utf-8", "replace").strip()
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
) -> LineParser:
    """The line parser of a format (`header` is the CSV header line)."""
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
        try:
            names = csv_header(header)
        except RecordError as exc:
            raise ConfigError(str(exc)) from exc
        return CsvParser(source, names, time_field=time_field, key_field=key_field)
    msg = f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
    raise ConfigError(msg)


def parse_line(
    parser: LineParser, raw: bytes, line_no: int, source_file: str, max_line_bytes: int | None = None
) -> Record | Reject:
    """One raw line (without its newline) to a record, or a reject that says why."""
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
    parser = make_parser(chosen, name, header=first, time_field=time_field, key_field=key_field)
    return chosen, name, _parse_stream(path, parser, chosen == "csv", max_line_bytes)


def _parse_stream(
    path: Path, parser: LineParser, has_header: bool, max_line_bytes: int | None
) -> Iterator[Record | Reject]:
    source_file = str(path)
    header_pending = has_header
    line_no = 0
    with open(path, "rb") as handle:
        for chunk in _chunks(handle):
            for raw in chunk:
                line_no += 1
                if header_pending and raw.strip():
                    header_pending = False
                    continue
                yield parse_line(parser, raw, line_no, source_file, max_line_bytes)


def _chunks(handle, size: int = 4 * 1024 * 1024) -> Iterable[list[bytes]]:
    tail = b""
    while block := handle.read(size):
        data = tail + block
        cut = data.rfind(b"\n")
        if cut < 0:
            tail = data
            continue
        tail = data[cut + 1 :]
        yield split_lines(data[: cut + 1])
    if tail:
        yield split_lines(tail)


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
