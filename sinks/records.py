"""One Kafka partition's buffered records, packed column by column.

kafka-python hands over one `ConsumerRecord` per record: a namedtuple holding a list and two bytes
objects. Kept as they are until a flush, a full buffer is a million Python objects, long-lived, that
the garbage collector walks again at every full collection and the allocator cannot reuse: in the
sink benchmark that made reading alone 10 to 30 % slower than a consumer that discards its records.
So each poll's records are packed at once, and the record objects die young, as in that consumer:

- offsets and timestamps go into `array('q')` (machine integers, no objects);
- values (and keys) of one poll go into one bytes blob plus an array of lengths (`PackedBytes`);
  the values' blob is newline-joined, which is the exact input Arrow's JSON reader wants, so a
  clean buffer reaches the format conversion without another copy per record;
- headers are kept only for the records that have any.

    columns = RecordColumns.of("t", 0, records)    # or RecordColumns("t", 0).extend(records)
    columns.offsets[i], columns.values[i], columns.headers_at(i), columns.values.joined()
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
from kafka.consumer.fetcher import ConsumerRecord

Headers = tuple[tuple[str, bytes | None], ...]

_OFFSET = attrgetter("offset")
_TIMESTAMP = attrgetter("timestamp")
_KEY = attrgetter("key")
_VALUE = attrgetter("value")
_HEADERS = attrgetter("headers")
_MISSING = -1  # the length of a None (a tombstone's value, a record without key)
_NEWLINE = ord("\n")


def _length(value: bytes | None) -> int:
    return _MISSING if value is None else len(value)


def _line_breaks(blob: bytes) -> int:
    """How many b"\\n" `blob` holds: NumPy counts 4x faster than `bytes.count`, without the GIL."""
    return int(np.count_nonzero(np.frombuffer(blob, np.uint8) == _NEWLINE))


@dataclass
class _Chunk:
    """Values of one poll: `blob` holds the present ones joined by `separator`."""

    blob: bytes
    lengths: array  # of 'q'; _MISSING for None
    size: int  # bytes of the values themselves (the blob without separators)
    clean: bool  # no None, and (newline separator) no line break inside a value
    _starts: array | None = None  # where each value begins in `blob`, computed on first lookup

    def starts(self, separator_width: int) -> array:
        if self._starts is None:
            self._starts = array("q", [0] * len(self.lengths))
            position = 0
            for i, length in enumerate(self.lengths):
                self._starts[i] = position
                if length != _MISSING:
                    position += length + separator_width
        return self._starts


class PackedBytes(Sequence[bytes | None]):
    """A column of bytes values (None allowed), stored as one blob per appended batch."""

    def __init__(self, separator: bytes) -> None:
        self.separator = separator
        self._chunks: list[_Chunk] = []
        self._ends: list[int] = []  # cumulative count after each chunk
        self.size = 0  # bytes of the values themselves

    def extend(self, values: Iterable[bytes | None]) -> None:
        batch = values if isinstance(values, list) else list(values)
        if not batch:
            return
        try:
            lengths = array("q", map(len, batch))
            present: list[bytes] = batch  # type: ignore[assignment]
        except TypeError:  # a None among them
            lengths = array("q", map(_length, batch))
            present = [v for v in batch if v is not None]
        blob = self.separator.join(present)
        clean = len(present) == len(batch)
        if clean and self.separator == b"\n":
            clean = _line_breaks(blob) == len(batch) - 1 and b"\r" not in blob
        chunk = _Chunk(blob, lengths, len(blob) - len(self.separator) * max(0, len(present) - 1), clean)
        self._chunks.append(chunk)
        self._ends.append(len(self) + len(batch))
        self.size += chunk.size

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> bytes | None:  # type: ignore[override]
        if not isinstance(index, int):
            msg = "PackedBytes takes one index at a time; use select() for many"
            raise TypeError(msg)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        which = bisect.bisect_right(self._ends, index)
        chunk = self._chunks[which]
        row = index - (self._ends[which - 1] if which else 0)
        length = chunk.lengths[row]
        if length == _MISSING:
            return None
        start = chunk.starts(len(self.separator))[row]
        return chunk.blob[start : start + length]

    def __iter__(self) -> Iterator[bytes | None]:
        width = len(self.separator)
        for chunk in self._chunks:
            position = 0
            for length in chunk.lengths:
                if length == _MISSING:
                    yield None
                    continue
                yield chunk.blob[position : position + length]
                position += length + width

    def last_batch(self) -> PackedBytes:
        """The values of the last `extend`, as a column of their own (sharing the blob)."""
        view = PackedBytes(self.separator)
        if self._chunks:
            chunk = self._chunks[-1]
            view._chunks = [chunk]
            view._ends = [len(chunk.lengths)]
            view.size = chunk.size
        return view

    def joined(self) -> bytes | None:
        """Every value, one per line, when none is None and none has a line break of its own (the
        input of a one-shot JSON read); None otherwise. Only for a newline-separated column."""
        if not self._chunks or not all(chunk.clean for chunk in self._chunks):
            return None
        if len(self._chunks) == 1:
            return self._chunks[0].blob
        return b"\n".join(chunk.blob for chunk in self._chunks)


@dataclass
class RecordColumns:
    """Records of `topic[partition]` in offset order: row i is `offsets[i]`, `values[i]`, ..."""

    topic: str
    partition: int
    offsets: array = field(default_factory=lambda: array("q"))
    timestamps: array = field(default_factory=lambda: array("q"))  # Kafka record timestamps, ms
    keys: PackedBytes = field(default_factory=lambda: PackedBytes(b""))
    values: PackedBytes = field(default_factory=lambda: PackedBytes(b"\n"))
    headers: dict[int, Headers] = field(default_factory=dict)  # by row, only rows that have headers

    @classmethod
    def of(cls, topic: str, partition: int, records: Sequence[ConsumerRecord]) -> RecordColumns:
        columns = cls(topic, partition)
        columns.extend(records)
        return columns

    def extend(self, records: Sequence[ConsumerRecord]) -> None:
        """Append records (in offset order) that kafka-python returned for this partition."""
        if not records:
            return
        base = len(self.offsets)
        first, last = records[0].offset, records[-1].offset
        if last - first == len(records) - 1:  # the usual case: no gap (compaction, transaction markers)
            self.offsets.extend(range(first, last + 1))
        else:
            self.offsets.extend(map(_OFFSET, records))
        self.timestamps.extend(map(_TIMESTAMP, records))
        self.keys.extend(list(map(_KEY, records)))
        self.values.extend(list(map(_VALUE, records)))
        headers = list(map(_HEADERS, records))
        if any(headers):
            self.headers.update((base + i, tuple(h)) for i, h in enumerate(headers) if h)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def first_offset(self) -> int:
        return self.offsets[0]

    @property
    def last_offset(self) -> int:
        return self.offsets[-1]

    @property
    def value_bytes(self) -> int:
        return self.values.size

    def headers_at(self, row: int) -> Headers:
        return self.headers.get(row, ())


__all__ = ["Headers", "PackedBytes", "RecordColumns"]
