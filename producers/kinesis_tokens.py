"""The `NextToken` of ListStreams and ListShards: where the next page starts, wrapped so a token of
one action is refused by the other.

    wrap_token("shards", "my-stream\\x00shardId-000000000001")  ->  base64url("shards\\x01my-stream...")

Tokens are not signed: they only name a stream or a shard to start after, which a caller could
name directly with `ExclusiveStartStreamName` or `ExclusiveStartShardId` anyway.
"""

from __future__ import annotations

import base64
import binascii

from producers.kinesis_errors import invalid


def wrap_token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}\x01{value}".encode()).decode()


def unwrap_token(token: str, kind: str) -> str:
    """The value `wrap_token(kind, value)` wrapped; InvalidArgumentException for anything else."""
    try:
        found, value = base64.urlsafe_b64decode(token.encode()).decode().split("\x01", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid NextToken: {token[:40]}") from exc
    if found != kind:
        raise invalid(f"Invalid NextToken: {token[:40]}")
    return value
