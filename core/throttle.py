"""A throttle for repeating work (publish a status, print progress): due at once, then once per interval.

    progress = Throttle(0.5)
    while working:
        if progress.due():
            print(...)

The first call is always due. The clock is `time.monotonic`, which counts from an unspecified point
(on Linux, the boot): a start of `0.0` compared with it would mean "not due" for the first
`interval_s` after boot, which is why no caller keeps a zero start of its own. `clock` can be given
for tests, so that a test's result never depends on the machine's uptime.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Says whether `interval_s` seconds have passed since it last said yes (always yes the first time)."""

    __slots__ = ("_clock", "_last", "interval_s")

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s < 0:
            msg = f"a throttle's interval must be >= 0 seconds, got {interval_s}"
            raise ValueError(msg)
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None

    def due(self, now: float | None = None) -> bool:
        """True (and restarts the interval) on the first call and whenever the interval has passed."""
        now = self._clock() if now is None else now
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True

    def reset(self, now: float | None = None) -> None:
        """Count the interval from `now` (default: the clock), as if `due` had just said yes."""
        self._last = self._clock() if now is None else now
