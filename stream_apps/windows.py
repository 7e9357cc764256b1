"""Window maths as pure functions over integer microseconds (event time, UTC).

Kinds, as Kinesis Data Analytics and Flink name them:

- tumbling:SIZE          fixed, non-overlapping `[k*SIZE, (k+1)*SIZE)` (KDA `STEP(... BY INTERVAL)`)
- hopping:SIZE/STEP      fixed, overlapping; every event is in SIZE/STEP windows `[k*STEP, k*STEP+SIZE)`
- sliding:SIZE           one window per (key, event time t): the events of that key in `(t-SIZE, t]`
                         (KDA `RANGE INTERVAL ... PRECEDING`: one output row per input row)
- session:GAP            events of a key less than GAP apart share a window `[first, last+GAP)`
- stagger:SIZE           opens at the first event of a key, `[t0, t0+SIZE)`; the next event at or after
                         its end opens the next one (KDA `WINDOWED BY STAGGER`)

Windows are half-open `[start, end)`; a window closes when the watermark reaches its end.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from stream_apps.durations import format_duration, parse_duration_us

KINDS = ("tumbling", "hopping", "sliding", "session", "stagger")


@dataclass(frozen=True)
class WindowSpec:
    """A window kind with its size (the gap for sessions) and, for hopping windows, the step."""

    kind: str
    size_us: int
    step_us: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            msg = f"window kind {self.kind!r} is unknown; use one of {', '.join(KINDS)}"
            raise ConfigError(msg)
        if self.size_us <= 0:
            msg = f"window {self.kind}: the size must be positive"
            raise ConfigError(msg)
        if self.kind == "hopping" and not (
            0 < self.step_us <= self.size_us and self.size_us % self.step_us == 0
        ):
            msg = (
                f"hopping window {format_duration(self.size_us)}/{format_duration(self.step_us)}: "
                "the step must divide the size (e.g. hopping:300s/60s)"
            )
            raise ConfigError(msg)

    @property
    def fixed(self) -> bool:
        """Tumbling and hopping windows depend only on the event time, not on other events."""
        return self.kind in ("tumbling", "hopping")

    @property
    def spelling(self) -> str:
        if self.kind == "hopping":
            return f"hopping:{format_duration(self.size_us)}/{format_duration(self.step_us)}"
        return f"{self.kind}:{format_duration(self.size_us)}"


def parse_window(text: str) -> WindowSpec:
    """`tumbling:60s`, `hopping:300s/60s`, `sliding:60s`, `session:30m`, `stagger:60s`."""
    kind, sep, rest = str(text).partition(":")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        msg = f"window {text!r}: write KIND:SIZE with KIND one of {', '.join(KINDS)} (e.g. tumbling:60s)"
        raise ConfigError(msg)
    if kind == "hopping":
        size, slash, step = rest.partition("/")
        if not slash:
            msg = f"window {text!r}: a hopping window needs SIZE/STEP, e.g. hopping:300s/60s"
            raise ConfigError(msg)
        return WindowSpec(
            kind, parse_duration_us(size, "window size"), parse_duration_us(step, "window step")
        )
    return WindowSpec(kind, parse_duration_us(rest, "window size"))


def tumbling_start(t_us: int, size_us: int) -> int:
    """Start of the tumbling window holding `t_us` (floor to a multiple of the size, also before 1970)."""
    return t_us - t_us % size_us


def hopping_starts(t_us: int, size_us: int, step_us: int) -> list[int]:
    """Starts of every hopping window holding `t_us`, oldest first."""
    last = t_us - t_us % step_us
    first = last - size_us + step_us
    return list(range(first, last + 1, step_us))


def fixed_starts(window: WindowSpec, t_us: int) -> list[int]:
    """Starts of the tumbling or hopping windows that hold `t_us`."""
    if window.kind == "tumbling":
        return [tumbling_start(t_us, window.size_us)]
    return hopping_starts(t_us, window.size_us, window.step_us)


def sliding_bounds(t_us: int, size_us: int) -> tuple[int, int]:
    """The sliding window of an event at `t_us` holds times in `(t - size, t]`; returned as `[start, end)`."""
    return t_us - size_us + 1, t_us + 1


def session_continues(last_us: int, t_us: int, gap_us: int) -> bool:
    """An event `t_us` (in time order) joins the session whose last event is `last_us`."""
    return t_us - last_us < gap_us


def stagger_continues(start_us: int, t_us: int, size_us: int) -> bool:
    """An event `t_us` (in time order) falls in the stagger window opened at `start_us`."""
    return t_us < start_us + size_us
