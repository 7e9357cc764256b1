import pytest

from queries.billing import athena_bill


@pytest.mark.parametrize(
    ("bytes_scanned", "billed_mb", "usd"),
    [
        (0, 10, 0.00005),
        (1, 10, 0.00005),
        (10_000_000, 10, 0.00005),
        (10_000_001, 11, 0.000055),
        (1_000_000_000_000, 1_000_000, 5.0),
        (2_500_000_000_001, 2_500_001, 12.500005),
    ],
)
def test_five_dollars_per_tb_rounded_up_to_the_mb_with_ten_mb_minimum(
    bytes_scanned: int, billed_mb: int, usd: float
) -> None:
    bill = athena_bill(bytes_scanned)
    assert bill.billed_mb == billed_mb
    assert bill.usd == pytest.approx(usd, abs=1e-12)


def test_negative_bytes_are_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        athena_bill(-1)


def test_describe_states_the_convention() -> None:
    assert athena_bill(1_234_567).describe() == (
        "1.23 MB scanned, billed 10 MB = $0.000050 ($5/TB, rounded up to the MB, 10 MB minimum, decimal units)"
    )
