"""Shards over partitions: AWS's hash-key ranges, and the shard a partition key lands on, checked
against an MD5 computed another way (hex digest, linear scan of the ranges)."""

import hashlib
import itertools

import pytest

from producers.kinesis_shards import (
    HASH_KEY_SPACE,
    hash_key_ranges,
    parse_hash_key,
    partition_key_hash,
    shard_for_hash_key,
    shard_for_key,
    shard_id,
    shard_partition,
)


def test_shard_ids_round_trip() -> None:
    assert shard_id(0) == "shardId-000000000000"
    assert shard_id(17) == "shardId-000000000017"
    assert shard_partition("shardId-000000000017") == 17
    assert shard_partition("17") is None
    assert shard_partition("shardId-17") is None


def test_ranges_are_the_ones_aws_describes() -> None:
    # AWS's documented DescribeStream outputs: 2 shards (describe-stream examples), 3 shards
    # (the AWS CLI's describe-stream example), 5 shards (API Gateway's Kinesis proxy tutorial).
    two = [(r.start, r.end) for r in hash_key_ranges(2)]
    assert two == [
        (0, 170141183460469231731687303715884105727),
        (170141183460469231731687303715884105728, 340282366920938463463374607431768211455),
    ]
    three = hash_key_ranges(3)
    assert three[0].as_aws() == {
        "StartingHashKey": "0",
        "EndingHashKey": "113427455640312821154458202477256070484",
    }
    assert three[1].start == 113427455640312821154458202477256070485
    assert three[2].start == 226854911280625642308916404954512140970
    five = hash_key_ranges(5)
    assert five[0].end == 68056473384187692692674921486353642290
    assert five[4].as_aws() == {
        "StartingHashKey": "272225893536750770770699685945414569164",
        "EndingHashKey": "340282366920938463463374607431768211455",
    }


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 6, 7, 10, 500])
def test_ranges_cover_the_space_without_gaps(shards: int) -> None:
    ranges = hash_key_ranges(shards)
    assert ranges[0].start == 0
    assert ranges[-1].end == HASH_KEY_SPACE - 1
    assert all(a.end + 1 == b.start for a, b in itertools.pairwise(ranges))
    assert all(r.start == i * 2**128 // shards for i, r in enumerate(ranges))


def _independent_shard(key: str, shards: int) -> int:
    value = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)
    bounds = [(i * 2**128 // shards, (i + 1) * 2**128 // shards - 1) for i in range(shards)]
    return next(i for i, (lo, hi) in enumerate(bounds) if lo <= value <= hi)


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 7])
def test_partition_keys_land_where_md5_says(shards: int) -> None:
    keys = [f"visitor-{i}" for i in range(2000)] + ["é", "日本語", "a" * 256, "0"]
    for key in keys:
        assert shard_for_key(key, shards) == _independent_shard(key, shards), key
    # a known digest: md5("a") = 0cc175b9c0f1b6a831c399e269772661
    assert partition_key_hash("a") == 0x0CC175B9C0F1B6A831C399E269772661
    assert shard_for_key("a", 4) == 0


def test_explicit_hash_keys_at_range_edges() -> None:
    ranges = hash_key_ranges(3)
    for i, r in enumerate(ranges):
        assert shard_for_hash_key(r.start, 3) == i
        assert shard_for_hash_key(r.end, 3) == i
    assert parse_hash_key("0") == 0
    assert parse_hash_key(str(HASH_KEY_SPACE - 1)) == HASH_KEY_SPACE - 1
    assert parse_hash_key(str(HASH_KEY_SPACE)) is None
    assert parse_hash_key("-1") is None
    assert parse_hash_key("01") is None
    assert parse_hash_key("1e3") is None
    assert parse_hash_key("") is None
    with pytest.raises(ValueError):
        shard_for_hash_key(HASH_KEY_SPACE, 3)
