"""Shard iterators: signed, self-contained, reusable, expired after exactly 5 minutes."""

import pytest

from core.aws_json import AwsError
from producers.kinesis_iterators import ITERATOR_TTL_MS, ShardPosition, decode_iterator, encode_iterator

SECRET = b"s" * 32


def test_round_trip_and_reuse() -> None:
    position = ShardPosition("clickstream.events", 3, 1187, 1_000_000)
    token = encode_iterator(position, SECRET)
    assert len(token) <= 512
    assert decode_iterator(token, SECRET, 1_000_000) == position
    assert decode_iterator(token, SECRET, 1_000_000 + 1000) == position  # reused: same position


def test_long_stream_names_fit_in_512_characters() -> None:
    token = encode_iterator(ShardPosition("s" * 128, 499, 2**63 - 1, 10**13), SECRET)
    assert len(token) <= 512


def test_expires_after_five_minutes() -> None:
    token = encode_iterator(ShardPosition("s", 0, 0, 1_000_000), SECRET)
    assert decode_iterator(token, SECRET, 1_000_000 + ITERATOR_TTL_MS).offset == 0
    with pytest.raises(AwsError) as caught:
        decode_iterator(token, SECRET, 1_000_000 + ITERATOR_TTL_MS + 1)
    assert caught.value.code == "ExpiredIteratorException"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "AA", lambda t: "x" + t, lambda t: t.replace(".", ""), lambda t: "garbage"]
)
def test_changed_or_foreign_tokens_are_refused(mangle) -> None:
    token = encode_iterator(ShardPosition("s", 0, 5, 1_000_000), SECRET)
    with pytest.raises(AwsError) as caught:
        decode_iterator(mangle(token), SECRET, 1_000_000)
    assert (caught.value.code, caught.value.text) == ("InvalidArgumentException", "Invalid ShardIterator.")
    with pytest.raises(AwsError):
        decode_iterator(token, b"t" * 32, 1_000_000)  # another server's secret
