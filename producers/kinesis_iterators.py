"""Kinesis shard iterators: self-contained, signed tokens naming a stream, a partition and an offset.

A shard iterator says where GetRecords reads next. Here it carries everything itself, so the
server keeps nothing per iterator and any number of them can be reused:

    base64url(JSON [version, stream, partition, offset, issued at in ms]) "." base64url(HMAC)

The HMAC-SHA256 (first 16 bytes) is keyed by the server's secret, so a changed token is refused
(`InvalidArgumentException`), and a token older than 5 minutes is refused with
`ExpiredIteratorException`, as AWS does (KDS: "a shard iterator expires 5 minutes after it is
returned"). Reusing an iterator reads the same records again; GetRecords' `NextShardIterator` is a
fresh token (5 more minutes). A server's secret is random per process unless given, so iterators
do not survive a restart of `tidelake serve` (callers get new ones, as after an expiry).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from core.aws_json import AwsError

#: AWS: "A shard iterator expires 5 minutes after it is returned to the requester."
ITERATOR_TTL_MS = 5 * 60 * 1000
_VERSION = 1
_MAC_BYTES = 16


@dataclass(frozen=True)
class ShardPosition:
    """What an iterator points at: the next offset to read in `stream`'s `partition`."""

    stream: str
    partition: int
    offset: int
    issued_ms: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_iterator(position: ShardPosition, secret: bytes) -> str:
    """The token for `position` (at most ~300 characters: AWS allows 512)."""
    payload = json.dumps(
        [_VERSION, position.stream, position.partition, position.offset, position.issued_ms],
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode_iterator(token: str, secret: bytes, now_ms: int) -> ShardPosition:
    """The position a token names; `AwsError` InvalidArgumentException for a token this server did
    not make, ExpiredIteratorException once it is older than 5 minutes."""
    try:
        payload_text, mac_text = token.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        expected = hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise ValueError("signature")
        version, stream, partition, offset, issued_ms = json.loads(payload)
        if version != _VERSION or not isinstance(stream, str):
            raise ValueError("version")
        partition, offset, issued_ms = int(partition), int(offset), int(issued_ms)
    except (ValueError, TypeError) as exc:
        raise AwsError("InvalidArgumentException", "Invalid ShardIterator.") from exc
    age = now_ms - issued_ms
    if age > ITERATOR_TTL_MS:
        msg = (
            f"Iterator expired. The iterator was created at time {issued_ms} while right now it is "
            f"{now_ms} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds."
        )
        raise AwsError("ExpiredIteratorException", msg)
    return ShardPosition(stream, partition, offset, issued_ms)
