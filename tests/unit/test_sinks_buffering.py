import gc
import sys

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from sinks.buffering import IDLE, INTERVAL, RECORDS, SIZE, Buffer, BufferPolicy
from sinks.records import PackedBytes, RecordColumns


def _records(partition: int, offsets: range | list[int], size: int = 100) -> list[ConsumerRecord]:
    return [
        ConsumerRecord("t", partition, -1, o, 0, 0, None, b"x" * size, [], None, -1, size, -1)
        for o in offsets
    ]


def test_nothing_is_due_while_under_every_hint() -> None:
    buffer = Buffer(BufferPolicy(interval_s=10, size_mb=1, records=100))
    buffer.add("t", 0, _records(0, range(10)))
    assert buffer.due(buffer.oldest_monotonic + 9.9, idle=False) is None
    assert buffer.records == 10
    assert buffer.bytes == 1000


def test_record_count_hint_fires_first() -> None:
    buffer = Buffer(BufferPolicy(interval_s=10, size_mb=1, records=5))
    buffer.add("t", 0, _records(0, range(5)))
    assert buffer.due(buffer.oldest_monotonic, idle=False) == RECORDS


def test_size_hint_fires_at_the_byte_limit() -> None:
    buffer = Buffer(BufferPolicy(interval_s=10, size_mb=0.001, records=1000))  # 1048 bytes
    buffer.add("t", 0, _records(0, range(10)))
    assert buffer.due(buffer.oldest_monotonic, idle=False) is None
    buffer.add("t", 1, _records(1, range(1)))
    assert buffer.due(buffer.oldest_monotonic, idle=False) == SIZE


def test_interval_counts_from_the_oldest_record_and_fires_when_idle() -> None:
    buffer = Buffer(BufferPolicy(interval_s=2))
    buffer.add("t", 0, _records(0, range(1)))
    start = buffer.oldest_monotonic
    buffer.add("t", 0, _records(0, range(1, 2)))
    assert buffer.oldest_monotonic == start
    assert buffer.seconds_until_due(start + 0.5) == 1.5
    assert buffer.due(start + 2, idle=False) == INTERVAL
    assert buffer.due(start + 2, idle=True) == IDLE


def test_an_empty_buffer_is_never_due_and_waits_a_whole_interval() -> None:
    buffer = Buffer(BufferPolicy(interval_s=3))
    assert buffer.due(1e9, idle=True) is None
    assert buffer.seconds_until_due(0) == 3


def test_take_empties_and_drop_forgets_revoked_partitions() -> None:
    buffer = Buffer(BufferPolicy())
    buffer.add("t", 0, _records(0, range(3)))
    buffer.add("t", 1, _records(1, range(2)))
    assert buffer.drop_partitions([("t", 1)]) == 2
    assert buffer.records == 3
    taken = buffer.take()
    assert list(taken[("t", 0)].offsets) == [0, 1, 2]
    assert list(taken) == [("t", 0)]
    assert (buffer.records, buffer.bytes, buffer.oldest_monotonic) == (0, 0, None)


def test_columns_keep_every_field_and_headers_only_where_a_record_has_them() -> None:
    records = _records(3, range(10, 14), size=4)
    records[2] = records[2]._replace(headers=[("error.type", b"x")], key=b"k2", timestamp=77)
    records[3] = records[3]._replace(value=None, serialized_value_size=-1)  # a tombstone
    columns = RecordColumns.of("t", 3, records)
    assert (columns.topic, columns.partition, len(columns)) == ("t", 3, 4)
    assert list(columns.offsets) == [10, 11, 12, 13]
    assert list(columns.timestamps) == [0, 0, 77, 0]
    assert list(columns.keys) == [None, None, b"k2", None]
    assert list(columns.values) == [b"xxxx", b"xxxx", b"xxxx", None]
    assert [columns.values[i] for i in (3, 0, -2)] == [None, b"xxxx", b"xxxx"]
    assert columns.headers == {2: (("error.type", b"x"),)}
    assert columns.headers_at(1) == ()
    assert columns.value_bytes == 12
    assert (columns.first_offset, columns.last_offset) == (10, 13)
    assert columns.values.joined() is None  # a tombstone cannot be one line of JSON


def test_values_join_one_per_line_across_polls_unless_one_spans_lines() -> None:
    values = PackedBytes(b"\n")
    values.extend([b'{"a":1}', b'{"a":2}'])
    values.extend([b'{"a":3}'])
    assert values.joined() == b'{"a":1}\n{"a":2}\n{"a":3}'
    assert (len(values), values.size, values[2]) == (3, 21, b'{"a":3}')
    values.extend([b'{"a":\n4}', b""])
    assert values.joined() is None
    assert list(values) == [b'{"a":1}', b'{"a":2}', b'{"a":3}', b'{"a":\n4}', b""]
    with pytest.raises(IndexError):
        values[5]


def test_columns_keep_offsets_with_gaps_and_headers_by_row() -> None:
    records = _records(0, [5, 6, 9, 12])  # gaps, as after compaction or transaction markers
    records[3] = records[3]._replace(headers=[("h", None)], key=b"k")
    columns = RecordColumns.of("t", 0, records)
    columns.extend(_records(0, [13, 14]))  # and contiguous again
    assert list(columns.offsets) == [5, 6, 9, 12, 13, 14]
    assert (columns.first_offset, columns.last_offset) == (5, 14)
    assert (columns.headers, columns.keys[3], columns.keys[4]) == ({3: (("h", None),)}, b"k", None)
    assert columns.value_bytes == 600


def test_a_buffer_keeps_no_python_object_per_record() -> None:
    """The point of packing: nothing per record for the garbage collector or the allocator."""
    buffer = Buffer(BufferPolicy())
    gc.collect()
    blocks, tracked = sys.getallocatedblocks(), len(gc.get_objects())
    for start in range(0, 20_000, 5_000):
        buffer.add("t", 0, _records(0, range(start, start + 5_000)))
    assert buffer.records == 20_000
    assert len(gc.get_objects()) - tracked < 50  # objects the garbage collector walks
    assert (
        sys.getallocatedblocks() - blocks < 200
    )  # small objects of the allocator (a bytes per value: 20,000)
