"""Kinesis sequence numbers for Kafka records: a decimal string that encodes partition and offset.

    sequence_number(partition, offset) = 49 * 10^54 + partition * 10^24 + offset

written out in full, so every sequence number has 56 digits, like AWS's:

    49 | partition, 30 digits | offset, 24 digits
    49000000000000000000000000000003000000000000000000001187   (partition 3, offset 1187)

Within a shard the number grows with the offset, so sequence numbers compare the same way as
integers (how the KCL compares them) and, having one width, as strings. They round-trip:
`parse_sequence_number(sequence_number(p, o)) == (p, o)`. AWS's own sequence numbers encode time
and shard too but are not indexes; these are Kafka offsets, so consecutive records of a partition
differ by 1 (or more where Kafka spent an offset on a transaction marker).
"""

from __future__ import annotations

_LEAD = 49 * 10**54
_PARTITION_UNIT = 10**24
_DIGITS = 56
#: Kafka's partitions are int32 and its offsets int64 (and AFTER_SEQUENCE_NUMBER reads offset + 1).
_PARTITIONS_END = 2**31
_OFFSETS_END = 2**63 - 1


def sequence_number(partition: int, offset: int) -> str:
    """The 56-digit sequence number of the record at `offset` in `partition`."""
    if not (0 <= partition < 10**30 and 0 <= offset < _PARTITION_UNIT):
        msg = f"no sequence number for partition {partition}, offset {offset}"
        raise ValueError(msg)
    return str(_LEAD + partition * _PARTITION_UNIT + offset)


def parse_sequence_number(text: str) -> tuple[int, int] | None:
    """`(partition, offset)` of a sequence number made by `sequence_number`, or None for any
    other string (wrong length, not decimal, not starting with 49, or a partition or offset past
    what Kafka can hold: int32 partitions, int64 offsets)."""
    if len(text) != _DIGITS or not text.isascii() or not text.isdigit() or not text.startswith("49"):
        return None
    partition, offset = divmod(int(text) - _LEAD, _PARTITION_UNIT)
    if partition >= _PARTITIONS_END or offset >= _OFFSETS_END:
        return None
    return partition, offset
