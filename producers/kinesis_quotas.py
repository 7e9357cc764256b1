"""Kinesis Data Streams' per-shard throughput quotas, for `tidelake serve --shard-quotas`.

AWS meters every shard of a provisioned stream (the Developer Guide's "Quotas and limits" page,
https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html):

- writes (PutRecord, PutRecords): 1,000 records and 1 MiB (data + partition key) a second;
- reads (GetRecords): 5 calls and 2 MiB a second. The GetRecords API reference adds that a call
  may return up to 10 MiB, after which "subsequent calls made within the next 5 seconds throw
  `ProvisionedThroughputExceededException`".

`ShardQuotas` keeps one token bucket per (stream, shard) and limit. A bucket holds one second's
worth (its capacity is its rate per second), starts full and refills continuously at its rate, so
a shard idle for a second can take a full second's burst at once, and a shard kept at the limit
gets exactly the rate. The clock is the caller's (`now`, seconds, read to the microsecond, counted
exactly); time that runs backwards refills nothing.

- A write takes one record token and its bytes; when either bucket lacks them the record is
  throttled and takes nothing. A record larger than a whole bucket (only with custom limits)
  passes when the bucket is full and leaves it in debt.
- A read is admitted while the shard has a call token and its read-bytes bucket is not empty or
  in debt; it takes the call token then, and its answer's bytes afterwards (`charge_read`), which
  may leave the bucket in debt: a 10 MiB answer drawn from a full 2 MiB bucket leaves 8 MiB of
  debt, so reads throw for the next 4 s; at the limit (an empty bucket), for the next 5 s, as the
  API reference says.

The texts of a throttle are AWS's: `Rate exceeded for shard shardId-000000000000 in stream NAME
under account ACCOUNT.` for writes (PutRecord's exception, PutRecords' per-record
`ErrorMessage`), `Rate exceeded for Shard - ACCOUNT/NAME/shardId-000000000000` for GetRecords.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from producers.kinesis_shards import shard_id

#: botocore's error code (kinesis 2013-12-02: ProvisionedThroughputExceededException, HTTP 400),
#: also PutRecords' per-record `ErrorCode`.
THROTTLED = "ProvisionedThroughputExceededException"
MIB = 1024 * 1024


def write_throttled_message(stream: str, partition: int, account: str) -> str:
    """AWS's text for a throttled write (PutRecord, a record of PutRecords)."""
    return f"Rate exceeded for shard {shard_id(partition)} in stream {stream} under account {account}."


def read_throttled_message(stream: str, partition: int, account: str) -> str:
    """AWS's text for a throttled GetRecords."""
    return f"Rate exceeded for Shard - {account}/{stream}/{shard_id(partition)}"


class TokenBucket:
    """Tokens that refill at `rate` a second up to `capacity`, starting full at `now` (seconds).
    Kept in whole micro-tokens and microseconds, so counts at a boundary are exact. Not
    thread-safe: `ShardQuotas` holds a lock around it."""

    __slots__ = ("capacity", "micro_tokens", "rate", "updated_us")

    def __init__(self, rate: int, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.micro_tokens = capacity * _MICRO
        self.updated_us = _micros(now)

    def _refill(self, now: float) -> None:
        now_us = _micros(now)
        if now_us > self.updated_us:
            gained = (now_us - self.updated_us) * self.rate  # rate tokens/s = rate micro-tokens/us
            self.micro_tokens = min(self.capacity * _MICRO, self.micro_tokens + gained)
            self.updated_us = now_us

    def level(self, now: float) -> float:
        """Tokens held at `now` (negative: in debt)."""
        self._refill(now)
        return self.micro_tokens / _MICRO

    def has(self, amount: int, now: float) -> bool:
        """Whether `amount` can be taken now (an amount over the capacity: when the bucket is full)."""
        self._refill(now)
        return self.micro_tokens >= min(amount, self.capacity) * _MICRO

    def positive(self, now: float) -> bool:
        """Whether the bucket holds anything at all (neither empty nor in debt)."""
        self._refill(now)
        return self.micro_tokens > 0

    def charge(self, amount: int, now: float) -> None:
        """Take `amount`, into debt if need be."""
        self._refill(now)
        self.micro_tokens -= amount * _MICRO


_MICRO = 1_000_000


def _micros(seconds: float) -> int:
    """`seconds` in whole microseconds (an epoch time keeps them exactly in a float)."""
    return round(seconds * _MICRO)


@dataclass
class _Shard:
    write_records: TokenBucket
    write_bytes: TokenBucket
    read_calls: TokenBucket
    read_bytes: TokenBucket


class ShardQuotas:
    """Per-shard write and read quotas (AWS's by default, see the module's docstring); limits per
    second, each > 0, else ValueError. Thread-safe. Streams are told apart by name: `forget` a
    stream when it is deleted or created, so a new stream of the same name starts full."""

    def __init__(
        self,
        *,
        write_records_per_s: int = 1_000,
        write_bytes_per_s: int = MIB,
        read_calls_per_s: int = 5,
        read_bytes_per_s: int = 2 * MIB,
    ) -> None:
        limits = {
            "write_records_per_s": write_records_per_s,
            "write_bytes_per_s": write_bytes_per_s,
            "read_calls_per_s": read_calls_per_s,
            "read_bytes_per_s": read_bytes_per_s,
        }
        for name, value in limits.items():
            if value <= 0:
                raise ValueError(f"{name} must be greater than 0, not {value}")
        self.write_records_per_s = write_records_per_s
        self.write_bytes_per_s = write_bytes_per_s
        self.read_calls_per_s = read_calls_per_s
        self.read_bytes_per_s = read_bytes_per_s
        self._shards: dict[tuple[str, int], _Shard] = {}
        self._lock = threading.Lock()

    @classmethod
    def aws_defaults(cls) -> ShardQuotas:
        """AWS's quotas for a shard: writes 1,000 records/s and 1 MiB/s, reads 5 calls/s and 2 MiB/s."""
        return cls()

    def describe(self) -> str:
        """One line for a server's banner: `writes 1,000 records/s and 1 MiB/s, reads 5 calls/s and
        2 MiB/s per shard`."""
        return (
            f"writes {self.write_records_per_s:,} records/s and {_size(self.write_bytes_per_s)}/s, "
            f"reads {self.read_calls_per_s:,} calls/s and {_size(self.read_bytes_per_s)}/s per shard"
        )

    def _shard(self, stream: str, partition: int, now: float) -> _Shard:
        shard = self._shards.get((stream, partition))
        if shard is None:
            shard = _Shard(
                TokenBucket(self.write_records_per_s, self.write_records_per_s, now),
                TokenBucket(self.write_bytes_per_s, self.write_bytes_per_s, now),
                TokenBucket(self.read_calls_per_s, self.read_calls_per_s, now),
                TokenBucket(self.read_bytes_per_s, self.read_bytes_per_s, now),
            )
            self._shards[(stream, partition)] = shard
        return shard

    def admit_write(self, stream: str, partition: int, size: int, now: float) -> bool:
        """Whether one record of `size` bytes (data + partition key) may be written to the shard at
        `now`; if so its record and bytes are taken."""
        with self._lock:
            shard = self._shard(stream, partition, now)
            if not (shard.write_records.has(1, now) and shard.write_bytes.has(size, now)):
                return False
            shard.write_records.charge(1, now)
            shard.write_bytes.charge(size, now)
            return True

    def admit_read(self, stream: str, partition: int, now: float) -> bool:
        """Whether a GetRecords call may read the shard at `now`; if so it takes a call token. Its
        answer's bytes are charged afterwards with `charge_read`."""
        with self._lock:
            shard = self._shard(stream, partition, now)
            if not (shard.read_calls.has(1, now) and shard.read_bytes.positive(now)):
                return False
            shard.read_calls.charge(1, now)
            return True

    def charge_read(self, stream: str, partition: int, size: int, now: float) -> None:
        """Take the `size` bytes (data + partition keys) a GetRecords call returned, into debt if
        need be: reads wait until the debt is paid back at the read rate."""
        with self._lock:
            self._shard(stream, partition, now).read_bytes.charge(size, now)

    def forget(self, stream: str) -> None:
        """Drop the stream's buckets (it was deleted or created)."""
        with self._lock:
            for key in [k for k in self._shards if k[0] == stream]:
                del self._shards[key]


def _size(n: int) -> str:
    if n % MIB == 0:
        return f"{n // MIB:,} MiB"
    if n % 1024 == 0:
        return f"{n // 1024:,} KiB"
    return f"{n:,} B"
