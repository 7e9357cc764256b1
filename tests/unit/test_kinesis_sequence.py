"""Sequence numbers: 56 decimal digits that encode partition and offset, round-trip, and order."""

import pytest

from producers.kinesis_sequence import parse_sequence_number, sequence_number


@pytest.mark.parametrize(
    ("partition", "offset"), [(0, 0), (0, 1), (3, 1187), (499, 2**63 - 2), (2**31 - 1, 10**18)]
)
def test_round_trip(partition: int, offset: int) -> None:
    text = sequence_number(partition, offset)
    assert len(text) == 56
    assert text.startswith("49")
    assert parse_sequence_number(text) == (partition, offset)


def test_known_value() -> None:
    assert sequence_number(3, 1187) == "49000000000000000000000000000003000000000000000000001187"


def test_increasing_within_a_shard_as_numbers_and_as_strings() -> None:
    numbers = [sequence_number(2, offset) for offset in (0, 1, 9, 10, 99, 100, 12345, 10**18)]
    assert numbers == sorted(numbers)
    assert [int(n) for n in numbers] == sorted(int(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "1187",
        "49",
        "4900000000000000000000000000000300000000000000000000118",
        "x" * 56,
        "59000000000000000000000000000003000000000000000000001187",
        "٤٩" + "0" * 54,
    ],
)
def test_foreign_strings_are_not_sequence_numbers(text: str) -> None:
    assert parse_sequence_number(text) is None


def test_out_of_range() -> None:
    with pytest.raises(ValueError):
        sequence_number(-1, 0)
    with pytest.raises(ValueError):
        sequence_number(0, 10**24)


@pytest.mark.parametrize(
    ("partition", "offset", "parsed"),
    [
        (0, 2**63 - 2, (0, 2**63 - 2)),  # the last offset AFTER_SEQUENCE_NUMBER can still step past
        (0, 2**63 - 1, None),  # offset + 1 would leave Kafka's int64 (GetRecords answered 500)
        (0, 10**24 - 1, None),
        (2**31 - 1, 5, (2**31 - 1, 5)),
        (2**31, 5, None),  # Kafka's partitions are int32
    ],
)
def test_sequence_numbers_past_kafkas_ranges_are_not_parsed(partition: int, offset: int, parsed) -> None:
    assert parse_sequence_number(sequence_number(partition, offset)) == parsed
