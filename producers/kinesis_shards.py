"""Kinesis shards over Kafka partitions: shard ids, hash-key ranges and which shard takes a record.

A stream of n shards is a topic of n partitions; shard i is partition i, named
`shardId-000000000000`-style (`shard_id(i)`). The 128-bit hash-key space [0, 2^128) is split into
n contiguous ranges as a stream created with n shards (or uniformly rescaled) has them:

    StartingHashKey(i) = i * 2^128 // n        EndingHashKey(i) = StartingHashKey(i + 1) - 1

(the last shard ends at 2^128 - 1). For 1 to 5 shards and any power of two this is, digit for
digit, the ranges AWS's DescribeStream shows (AWS's documented examples with 2, 3 and 5 shards).

A record's hash key is its `ExplicitHashKey` if given (a decimal integer in [0, 2^128 - 1]),
else the MD5 digest of its partition key's UTF-8 bytes read as a big-endian 128-bit integer; the
shard whose range holds the hash key takes the record (AWS: KDS key concepts, API_PutRecord).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

#: The size of the hash-key space: hash keys are integers in [0, 2^128).
HASH_KEY_SPACE = 1 << 128
_SHARD_ID = re.compile(r"shardId-(\d{12})")


def shard_id(partition: int) -> str:
    """`3` -> `shardId-000000000003`."""
    return f"shardId-{partition:012d}"


def shard_partition(shard: str) -> int | None:
    """`shardId-000000000003` -> 3; None when `shard` is not a shard id of this form. Like AWS,
    the bare digits with the prefix dropped are not accepted."""
    match = _SHARD_ID.fullmatch(shard)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class HashKeyRange:
    """One shard's share of the hash-key space, both ends included."""

    start: int
    end: int

    def as_aws(self) -> dict[str, str]:
        """The `HashKeyRange` member of a Shard: decimal strings."""
        return {"StartingHashKey": str(self.start), "EndingHashKey": str(self.end)}


@lru_cache(maxsize=64)
def _starts(shards: int) -> tuple[int, ...]:
    return tuple(i * HASH_KEY_SPACE // shards for i in range(shards))


def hash_key_ranges(shards: int) -> list[HashKeyRange]:
    """The ranges of a stream of `shards` shards, in shard order (ValueError below 1)."""
    if shards < 1:
        msg = f"a stream has at least 1 shard, got {shards}"
        raise ValueError(msg)
    starts = _starts(shards)
    ends = [s - 1 for s in starts[1:]] + [HASH_KEY_SPACE - 1]
    return [HashKeyRange(s, e) for s, e in zip(starts, ends, strict=True)]


def partition_key_hash(partition_key: str) -> int:
    """MD5 of the key's UTF-8 bytes as an unsigned big-endian 128-bit integer."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def parse_hash_key(text: str) -> int | None:
    """An `ExplicitHashKey` as an integer, or None unless it is a decimal integer in [0, 2^128)."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    value = int(text)
    return value if value < HASH_KEY_SPACE else None


def shard_for_hash_key(hash_key: int, shards: int) -> int:
    """The shard (partition) whose range holds `hash_key`."""
    if not 0 <= hash_key < HASH_KEY_SPACE:
        msg = f"hash key {hash_key} is outside [0, 2^128)"
        raise ValueError(msg)
    return bisect.bisect_right(_starts(shards), hash_key) - 1


def shard_for_key(partition_key: str, shards: int) -> int:
    """The shard a record with this partition key (and no ExplicitHashKey) goes to."""
    return shard_for_hash_key(partition_key_hash(partition_key), shards)
