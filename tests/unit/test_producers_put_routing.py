"""Kinesis routing and limits of the put API that need no broker."""

from __future__ import annotations

import hashlib

import pytest

from core.errors import RecordError
from producers.put_api import (
    HASH_KEY_SPACE,
    MAX_RECORD_BYTES,
    ShardQuota,
    _validate_record,
    hash_key_partition,
    kinesis_partition,
    shard_id,
)


def test_hash_key_ranges_split_the_128_bit_space_evenly() -> None:
    assert hash_key_partition(0, 4) == 0
    assert hash_key_partition(HASH_KEY_SPACE // 4 - 1, 4) == 0
    assert hash_key_partition(HASH_KEY_SPACE // 4, 4) == 1
    assert hash_key_partition(HASH_KEY_SPACE - 1, 4) == 3


def test_kinesis_routing_uses_the_md5_of_the_partition_key() -> None:
    for key in ("visitor-1", "visitor-2", "ü-unicode", "x" * 256):
        md5 = int(hashlib.md5(key.encode()).hexdigest(), 16)
        assert kinesis_partition(key, 8) == md5 * 8 // HASH_KEY_SPACE


def test_shard_ids_look_like_kinesis_ones() -> None:
    assert shard_id(3) == "shardId-000000000003"


@pytest.mark.parametrize(
    ("data", "key", "hash_key", "message"),
    [
        (b"x", "", None, "PartitionKey must be a string of 1 to 256"),
        (b"x", "k" * 257, None, "PartitionKey must be a string of 1 to 256"),
        (b"x" * MAX_RECORD_BYTES, "k", None, "1,048,577 bytes"),
        ("text", "k", None, "Data must be bytes"),
        (b"x", "k", "-1", "ExplicitHashKey"),
        (b"x", "k", str(HASH_KEY_SPACE), "ExplicitHashKey"),
    ],
)
def test_records_over_kinesis_limits_are_invalid_arguments(data, key, hash_key, message) -> None:
    with pytest.raises(RecordError, match=message) as caught:
        _validate_record(0, data, key, hash_key)
    assert caught.value.error_type == "InvalidArgumentException"


def test_a_record_of_exactly_one_mebibyte_is_allowed() -> None:
    assert _validate_record(0, b"x" * (MAX_RECORD_BYTES - 1), "k", None) == MAX_RECORD_BYTES


def test_shard_quota_admits_the_burst_then_refills_with_time() -> None:
    now = [0.0]
    quota = ShardQuota(records_per_s=3, bytes_per_s=1_000_000, clock=lambda: now[0])
    assert [quota.admit(0, 10) for _ in range(5)] == [True, True, True, False, False]
    assert quota.admit(1, 10) is True  # another shard has its own bucket
    now[0] = 1.0
    assert [quota.admit(0, 10) for _ in range(4)] == [True, True, True, False]
