"""Python's thread switch interval, lowered while delivery streams run in the process.

A delivery stream runs two threads: the consumer thread polls and decodes, the writer thread
converts and writes Parquet. The interval is process-wide, so it is lowered once for every stream
that runs and restored when the last one stops.
"""

from __future__ import annotations

import sys
import threading

#: Python's thread switch interval while a delivery stream runs (default 5 ms). The consumer thread
#: decodes records in pure Python and never waits, so each time the writer thread comes back from
#: Arrow (which releases the GIL) it waited up to the whole interval for the GIL: a 200k-record
#: flush took 2.1 s beside a busy thread instead of 0.45 s alone; with 1 ms it takes 0.9 s.
SWITCH_INTERVAL_S = 0.001


class _SwitchInterval:
    """Lowers `sys.setswitchinterval` while at least one stream runs in the process, then restores it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = sys.getswitchinterval()

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL_S))
            self._running += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._saved)


#: Entered by each running delivery stream (`DeliveryStream.run`).
switch_interval = _SwitchInterval()
