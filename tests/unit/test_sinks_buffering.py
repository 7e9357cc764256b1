from kafka.consumer.fetcher import ConsumerRecord

from sinks.buffering import IDLE, INTERVAL, RECORDS, SIZE, Buffer, BufferPolicy


def _records(partition: int, offsets: range, size: int = 100) -> list[ConsumerRecord]:
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
    assert [r.offset for r in taken[("t", 0)]] == [0, 1, 2]
    assert list(taken) == [("t", 0)]
    assert (buffer.records, buffer.bytes, buffer.oldest_monotonic) == (0, 0, None)
