"""Per-shard quotas (producers.kinesis_quotas) on a clock the tests move: AWS's limits to the record
and the byte at the boundary, refill, read debt, and the texts AWS throttles with."""

from __future__ import annotations

import pytest

from producers.kinesis_quotas import (
    MIB,
    ShardQuotas,
    TokenBucket,
    read_throttled_message,
    write_throttled_message,
)

T0 = 1_796_000_000.0  # 2026-11-30, epoch seconds as KinesisService's clock gives them


def admitted_writes(
    quotas: ShardQuotas, count: int, size: int, now: float, stream: str = "s", shard: int = 0
) -> int:
    return sum(quotas.admit_write(stream, shard, size, now) for _ in range(count))


def admitted_reads(quotas: ShardQuotas, count: int, now: float, stream: str = "s", shard: int = 0) -> int:
    return sum(quotas.admit_read(stream, shard, now) for _ in range(count))


def test_aws_defaults_are_aws_per_shard_quotas() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert (
        quotas.write_records_per_s,
        quotas.write_bytes_per_s,
        quotas.read_calls_per_s,
        quotas.read_bytes_per_s,
    ) == (1_000, 1_048_576, 5, 2_097_152)
    assert quotas.describe() == "writes 1,000 records/s and 1 MiB/s, reads 5 calls/s and 2 MiB/s per shard"


def test_a_shard_takes_1000_records_a_second_and_refills_after_a_second() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert admitted_writes(quotas, 1_200, 10, T0) == 1_000
    assert admitted_writes(quotas, 1_200, 10, T0 + 0.999) == 999  # 0.999 s refilled 999 records
    assert admitted_writes(quotas, 1, 10, T0 + 0.999) == 0
    assert admitted_writes(quotas, 1_200, 10, T0 + 1.999) == 1_000
    assert admitted_writes(quotas, 1, 10, T0 + 1.999) == 0


def test_records_refill_at_the_rate() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert admitted_writes(quotas, 1_000, 1, T0) == 1_000
    assert admitted_writes(quotas, 1_000, 1, T0 + 0.5) == 500
    assert admitted_writes(quotas, 1_000, 1, T0 + 0.6) == 100
    assert admitted_writes(quotas, 1_000, 1, T0 + 10) == 1_000  # a bucket holds one second, no more


def test_a_shard_takes_one_mib_a_second() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert admitted_writes(quotas, 300, 4_096, T0) == 256  # 256 x 4 KiB = 1 MiB
    assert admitted_writes(quotas, 1, 1, T0) == 0
    assert admitted_writes(quotas, 300, 4_096, T0 + 0.25) == 64
    assert admitted_writes(quotas, 300, 4_096, T0 + 1.25) == 256


def test_a_throttled_record_takes_nothing_and_a_smaller_one_may_pass() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert quotas.admit_write("s", 0, MIB - 100, T0)
    assert not quotas.admit_write("s", 0, 200, T0)  # 100 bytes left
    assert admitted_writes(quotas, 200, 1, T0) == 100  # the throttled record took no bytes
    quotas = ShardQuotas.aws_defaults()
    assert admitted_writes(quotas, 999, 1, T0) == 999
    assert not quotas.admit_write("s", 0, MIB, T0)  # 999 bytes are gone
    assert admitted_writes(quotas, 5, 1, T0) == 1  # nor the throttled record's record token


def test_shards_and_streams_have_their_own_buckets() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert admitted_writes(quotas, 1_001, 1, T0, "a", 0) == 1_000
    assert admitted_writes(quotas, 1_001, 1, T0, "a", 1) == 1_000
    assert admitted_writes(quotas, 1_001, 1, T0, "b", 0) == 1_000
    assert admitted_reads(quotas, 6, T0, "a", 0) == 5  # writes and reads are metered apart


def test_a_record_larger_than_the_bucket_passes_when_it_is_full_and_leaves_debt() -> None:
    quotas = ShardQuotas(write_bytes_per_s=1_000)
    assert quotas.admit_write("s", 0, 3_000, T0)
    assert not quotas.admit_write("s", 0, 1, T0 + 2)  # 2,000 bytes of debt paid back, none left
    assert quotas.admit_write("s", 0, 1, T0 + 2.001)


def test_reads_are_five_calls_a_second() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert admitted_reads(quotas, 10, T0) == 5
    assert admitted_reads(quotas, 10, T0 + 0.2) == 1
    assert admitted_reads(quotas, 10, T0 + 0.3) == 0
    assert admitted_reads(quotas, 10, T0 + 1.3) == 5


def test_a_10_mib_answer_blocks_reads_for_4_s_from_a_full_bucket_and_5_s_at_the_limit() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert quotas.admit_read("s", 0, T0)
    quotas.charge_read("s", 0, 10 * MIB, T0)  # 2 MiB held, 8 MiB of debt
    assert admitted_reads(quotas, 1, T0 + 3.999999) == 0
    assert admitted_reads(quotas, 1, T0 + 4) == 0  # the debt is paid, nothing is left yet
    assert admitted_reads(quotas, 1, T0 + 4.000001) == 1

    quotas = ShardQuotas.aws_defaults()
    assert quotas.admit_read("s", 0, T0)
    quotas.charge_read("s", 0, 2 * MIB, T0)  # a reader at the limit: the bucket is empty
    assert admitted_reads(quotas, 1, T0) == 0
    assert quotas.admit_read("s", 0, T0 + 0.000001)  # it holds 2.097152 bytes
    quotas.charge_read("s", 0, 10 * MIB, T0 + 0.000001)
    assert admitted_reads(quotas, 1, T0 + 5) == 0
    assert admitted_reads(quotas, 1, T0 + 5.000001) == 1


def test_empty_answers_cost_calls_only() -> None:
    quotas = ShardQuotas.aws_defaults()
    for _ in range(5):
        assert quotas.admit_read("s", 0, T0)
        quotas.charge_read("s", 0, 0, T0)
    assert not quotas.admit_read("s", 0, T0)
    assert quotas.admit_read("s", 0, T0 + 0.2)


def test_forget_gives_a_recreated_stream_full_buckets() -> None:
    quotas = ShardQuotas.aws_defaults()
    assert admitted_writes(quotas, 1_001, 1, T0, "a") == 1_000
    assert admitted_writes(quotas, 1_001, 1, T0, "b") == 1_000
    quotas.forget("a")
    assert admitted_writes(quotas, 1_001, 1, T0, "a") == 1_000
    assert admitted_writes(quotas, 1, 1, T0, "b") == 0


def test_a_clock_that_goes_back_refills_nothing() -> None:
    bucket = TokenBucket(rate=5, capacity=5, now=T0)
    bucket.charge(5, T0)
    assert bucket.level(T0 - 60) == 0
    assert not bucket.positive(T0 - 60)
    assert bucket.level(T0 + 0.2) == 1
    assert not bucket.has(2, T0 + 0.2)
    assert bucket.has(1, T0 + 0.2)


@pytest.mark.parametrize(
    "limit", ["write_records_per_s", "write_bytes_per_s", "read_calls_per_s", "read_bytes_per_s"]
)
def test_limits_must_be_positive(limit: str) -> None:
    with pytest.raises(ValueError, match=f"^{limit} must be greater than 0, not 0$"):
        ShardQuotas(**{limit: 0})


def test_throttles_say_what_aws_says() -> None:
    assert (
        write_throttled_message("orders", 3, "000000000000")
        == "Rate exceeded for shard shardId-000000000003 in stream orders under account 000000000000."
    )
    assert (
        read_throttled_message("orders", 3, "000000000000")
        == "Rate exceeded for Shard - 000000000000/orders/shardId-000000000003"
    )
    assert ShardQuotas(write_bytes_per_s=1_536, read_bytes_per_s=100).describe() == (
        "writes 1,000 records/s and 1,536 B/s, reads 5 calls/s and 100 B/s per shard"
    )
