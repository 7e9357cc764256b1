"""Prefix templates in Firehose's syntax: where in a dataset a record's file goes.

A template is literal text with expressions `!{namespace:value}`:

    !{timestamp:yyyy-MM-dd}              the record's time (event time by default) in UTC, formatted
                                         with Java DateTimeFormatter letters (yyyy yy MM dd HH mm ss,
                                         'quoted' text is literal)
    !{partitionKeyFromQuery:page}        the value of a field of the record
    !{partitionKeyFromLambda:country}    a partition key returned by the transform hook
    !{firehose:error-output-type}        format-conversion-failed, processing-failed, ... (error prefix)
    !{firehose:random-string}            11 characters, stable for one batch of one Kafka partition

Values from records are escaped so that no record can write outside its dataset: every character
outside `[A-Za-z0-9_.-]` is percent-encoded (UTF-8), `.` and `..` are encoded, an empty or missing
value becomes `__HIVE_DEFAULT_PARTITION__` (as Hive does) and a very long value is cut and hashed.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import ConfigError
from core.lake import NULL_PARTITION

#: A path segment longer than this is cut and suffixed with a hash (file systems allow 255 bytes).
MAX_SEGMENT_CHARS = 120
RANDOM_STRING_CHARS = 11
_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
_SAFE = frozenset(string.ascii_letters + string.digits + "_.-")
#: Java DateTimeFormatter letters that tidelake understands, longest first.
_JAVA_TO_STRFTIME = (("yyyy", "%Y"), ("uuuu", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"),
                     ("mm", "%M"), ("ss", "%S"))  # fmt: skip
_NAMESPACES = ("timestamp", "partitionKeyFromQuery", "partitionKeyFromLambda", "firehose")
_FIREHOSE_VALUES = ("error-output-type", "random-string")


def escape_value(value: object) -> str:
    """One safe path segment for a partition value taken from a record."""
    if value is None:
        return NULL_PARTITION
    text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if text == "":
        return NULL_PARTITION
    escaped = "".join(ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)
    if escaped.strip(".") == "":  # ".", "..", "...": never a path step
        escaped = escaped.replace(".", "%2E")
    if len(escaped) > MAX_SEGMENT_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        escaped = f"{escaped[: MAX_SEGMENT_CHARS - 17]}~{digest}"
    return escaped


def java_to_strftime(pattern: str) -> str:
    """`yyyy-MM-dd'T'HH` -> `%Y-%m-%dT%H`; raises ConfigError on letters tidelake does not support."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                msg = f"timestamp pattern {pattern!r}: unclosed quote at position {i}"
                raise ConfigError(msg)
            out.append(pattern[i + 1 : end].replace("%", "%%") if end > i + 1 else "'")
            i = end + 1
            continue
        for java, strf in _JAVA_TO_STRFTIME:
            if pattern.startswith(java, i):
                out.append(strf)
                i += len(java)
                break
        else:
            if ch.isalpha():
                msg = (
                    f"timestamp pattern {pattern!r}: letter {ch!r} is not supported; "
                    "use yyyy, yy, MM, dd, HH, mm, ss and 'quoted' literals"
                )
                raise ConfigError(msg)
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def random_string(seed: str) -> str:
    """Firehose's 11-character random string, derived from `seed` so a rewrite lands on the same path."""
    return hashlib.sha256(seed.encode()).hexdigest()[:RANDOM_STRING_CHARS]


@dataclass(frozen=True)
class Part:
    """A piece of a template: literal text, or an expression `namespace:value`."""

    namespace: str  # "" for literal text
    value: str


@dataclass(frozen=True)
class PrefixTemplate:
    """A parsed prefix template; `evaluate` gives each row of a batch its folder."""

    text: str
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, text: str, *, error_prefix: bool = False) -> PrefixTemplate:
        where = "error prefix" if error_prefix else "prefix"
        parts: list[Part] = []
        position = 0
        for found in _EXPRESSION.finditer(text):
            if found.start() > position:
                parts.append(Part("", text[position : found.start()]))
            namespace, value = found.group(1), found.group(2).strip()
            if namespace not in _NAMESPACES:
                msg = (
                    f"{where} {text!r}: unknown namespace {namespace!r}; use one of {', '.join(_NAMESPACES)}"
                )
                raise ConfigError(msg)
            if namespace == "timestamp":
                java_to_strftime(value)  # validate now, not on the first record
            if namespace == "firehose" and value not in _FIREHOSE_VALUES:
                msg = f"{where} {text!r}: firehose:{value} is unknown; use {' or '.join(_FIREHOSE_VALUES)}"
                raise ConfigError(msg)
            if namespace.startswith("partitionKeyFrom") and (not value or error_prefix):
                msg = f"{where} {text!r}: {namespace} needs a key and is not allowed in an error prefix"
                raise ConfigError(msg)
            if value == "error-output-type" and not error_prefix:
                msg = f"prefix {text!r}: firehose:error-output-type belongs in the error prefix only"
                raise ConfigError(msg)
            parts.append(Part(namespace, value))
            position = found.end()
        if position < len(text):
            parts.append(Part("", text[position:]))
        literal = "".join(p.value for p in parts if not p.namespace)
        if "!{" in literal or text.startswith("/") or "\\" in literal:
            msg = f"{where} {text!r}: malformed expression, leading '/' or backslash; write e.g. dt=!{{timestamp:yyyy-MM-dd}}/"
            raise ConfigError(msg)
        if any(segment in (".", "..") for segment in re.split(r"/", literal)):
            msg = f"{where} {text!r}: '.' and '..' are not allowed as folder names"
            raise ConfigError(msg)
        if error_prefix and not any(p.value == "error-output-type" for p in parts):
            msg = f"error prefix {text!r} must contain !{{firehose:error-output-type}} (as Firehose requires)"
            raise ConfigError(msg)
        return cls(text, tuple(parts))

    @property
    def query_fields(self) -> tuple[str, ...]:
        return tuple(p.value for p in self.parts if p.namespace == "partitionKeyFromQuery")

    @property
    def lambda_keys(self) -> tuple[str, ...]:
        return tuple(p.value for p in self.parts if p.namespace == "partitionKeyFromLambda")

    @property
    def uses_timestamp(self) -> bool:
        return any(p.namespace == "timestamp" for p in self.parts)

    def evaluate(
        self,
        rows: int,
        *,
        times: pa.Array | None = None,
        table: pa.Table | None = None,
        lambda_keys: Sequence[dict[str, str] | None] | None = None,
        error_type: str = "",
        seed: str = "",
    ) -> pa.Array:
        """The folder (ending in '/') of each of `rows` rows, as a string array.

        `times` is a timestamp[us, UTC] array (event or arrival time), `table` holds the fields
        that `partitionKeyFromQuery` reads, `lambda_keys` the transform hook's partition keys.
        """
        if times is not None and all(p.namespace in ("", "timestamp", "firehose") for p in self.parts):
            return self._evaluate_by_time(rows, times, error_type, seed)
        pieces: list[pa.Array | str] = []
        for part in self.parts:
            if not part.namespace:
                pieces.append(part.value)
            elif part.namespace == "timestamp":
                if times is None:
                    msg = f"prefix {self.text!r} needs a timestamp but none was given"
                    raise ValueError(msg)
                pieces.append(pc.strftime(times, format=java_to_strftime(part.value), locale="C"))
            elif part.namespace == "partitionKeyFromQuery":
                column = (
                    table.column(part.value)
                    if table is not None and part.value in table.column_names
                    else None
                )
                pieces.append(_escaped_column(column, rows))
            elif part.namespace == "partitionKeyFromLambda":
                keys = lambda_keys or [None] * rows
                pieces.append(pa.array([escape_value((k or {}).get(part.value)) for k in keys], pa.string()))
            elif part.value == "error-output-type":
                pieces.append(escape_value(error_type))
            else:
                pieces.append(random_string(seed))
        if not pieces:
            pieces.append("")
        arrays = [
            p if isinstance(p, pa.Array | pa.ChunkedArray) else pa.array([p] * rows, pa.string())
            for p in pieces
        ]
        joined = pc.binary_join_element_wise(*arrays, "") if len(arrays) > 1 else arrays[0]
        if isinstance(joined, pa.ChunkedArray):
            joined = joined.combine_chunks()
        return pc.if_else(pc.ends_with(joined, "/"), joined, pc.binary_join_element_wise(joined, "/", ""))

    def _evaluate_by_time(self, rows: int, times: pa.Array, error_type: str, seed: str) -> pa.Array:
        """The common case: the folder depends on time alone, so format each distinct time unit
        once (a few per batch) instead of every row."""
        unit = _finest_unit(self.parts)
        floored = pc.floor_temporal(times, unit=unit) if unit else pa.array([0] * rows, pa.int64())
        encoded = pc.dictionary_encode(floored)
        distinct = encoded.dictionary
        pieces: list[pa.Array | str] = []
        for part in self.parts:
            if not part.namespace:
                pieces.append(part.value)
            elif part.namespace == "timestamp":
                pieces.append(pc.strftime(distinct, format=java_to_strftime(part.value), locale="C"))
            elif part.value == "error-output-type":
                pieces.append(escape_value(error_type))
            else:
                pieces.append(random_string(seed))
        count = len(distinct)
        arrays = [
            p if isinstance(p, pa.Array) else pa.array([p] * count, pa.string()) for p in pieces or [""]
        ]
        joined = pc.binary_join_element_wise(*arrays, "") if len(arrays) > 1 else arrays[0]
        folders = [text if text.endswith("/") else text + "/" for text in joined.to_pylist()]
        return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(folders, pa.string())).cast(
            pa.string()
        )


#: Java letters -> the Arrow temporal unit they need, finest first.
_UNITS = (
    ("ss", "second"),
    ("mm", "minute"),
    ("HH", "hour"),
    ("dd", "day"),
    ("MM", "month"),
    ("yy", "year"),
    ("uu", "year"),
)


def _finest_unit(parts: tuple[Part, ...]) -> str | None:
    patterns = [_unquoted(p.value) for p in parts if p.namespace == "timestamp"]
    for letters, unit in _UNITS:
        if any(letters in pattern for pattern in patterns):
            return unit
    return None


def _unquoted(pattern: str) -> str:
    return re.sub(r"'[^']*'", "", pattern)


def _escaped_column(column: pa.ChunkedArray | None, rows: int) -> pa.Array:
    """Escape each distinct value once (few distinct partition values, many rows)."""
    if column is None:
        return pa.array([NULL_PARTITION] * rows, pa.string())
    encoded = pc.dictionary_encode(column.combine_chunks())
    dictionary = [escape_value(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices
    escaped = pa.array(dictionary, pa.string()).take(indices) if dictionary else pa.nulls(rows, pa.string())
    return pc.fill_null(escaped, NULL_PARTITION)
