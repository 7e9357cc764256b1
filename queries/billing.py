"""What Athena would charge for a query: $5 per TB scanned, rounded up to the MB, 10 MB minimum.

AWS does not say whether its MB and TB are decimal or binary; tidelake uses decimal units
(1 MB = 10**6 bytes, 1 TB = 10**12 bytes) and prints that convention beside every bill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

USD_PER_TB = 5.0
MIN_BILLED_MB = 10
BYTES_PER_MB = 1_000_000
MB_PER_TB = 1_000_000
CONVENTION = "$5/TB, rounded up to the MB, 10 MB minimum, decimal units"


@dataclass(frozen=True)
class Bill:
    bytes_scanned: int
    billed_mb: int
    usd: float

    def describe(self) -> str:
        return f"{_human_bytes(self.bytes_scanned)} scanned, billed {self.billed_mb} MB = ${self.usd:.6f} ({CONVENTION})"


def athena_bill(bytes_scanned: int) -> Bill:
    """The bill of one query; failed queries are free, so callers pass 0 for them."""
    if bytes_scanned < 0:
        msg = f"bytes scanned cannot be negative, got {bytes_scanned}"
        raise ValueError(msg)
    billed_mb = max(MIN_BILLED_MB, math.ceil(bytes_scanned / BYTES_PER_MB))
    return Bill(bytes_scanned, billed_mb, round(billed_mb * USD_PER_TB / MB_PER_TB, 9))


def _human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.2f} {unit}"
        size /= 1000
    return f"{size:,.2f} TB"
