"""When each event of a replay is due: at its original pace, faster, at a fixed rate, or at once.

Pure logic, no clocks: the replay loop asks `due_s` and sleeps until then. Events keep file
order; an event whose time is earlier than the one before it is due at once (out-of-order logs).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError

MAX_SPEED = "max-speed"
SPEED = "speed"
RATE = "rate"


@dataclass(frozen=True)
class Pace:
    """How fast to replay: `speed` divides the original gaps, `rate` is events per second."""

    mode: str
    value: float = 1.0

    @classmethod
    def from_flags(
        cls, speed: float | None = None, rate: float | None = None, max_speed: bool = False
    ) -> Pace:
        chosen = [
            name
            for name, given in (("--speed", speed), ("--rate", rate), ("--max-speed", max_speed or None))
            if given is not None
        ]
        if len(chosen) > 1:
            msg = f"{' and '.join(chosen)} exclude each other; pick one of --speed X, --rate N, --max-speed"
            raise ConfigError(msg)
        if max_speed:
            return cls(MAX_SPEED)
        if rate is not None:
            if rate <= 0:
                msg = f"--rate must be more than 0 events per second, got {rate}"
                raise ConfigError(msg)
            return cls(RATE, rate)
        speed = 1.0 if speed is None else speed
        if speed <= 0:
            msg = f"--speed must be more than 0 (1 = original pace, 10 = ten times faster), got {speed}"
            raise ConfigError(msg)
        return cls(SPEED, speed)

    def describe(self) -> str:
        if self.mode == MAX_SPEED:
            return "as fast as possible"
        if self.mode == RATE:
            return f"{self.value:g} events/s"
        return f"{self.value:g}x the original pace"


class Schedule:
    """Seconds after the start at which the `index`-th event (event time `time_us`) is due."""

    def __init__(self, pace: Pace, first_time_us: int) -> None:
        self.pace = pace
        self.first_time_us = first_time_us

    def due_s(self, index: int, time_us: int) -> float:
        if self.pace.mode == MAX_SPEED:
            return 0.0
        if self.pace.mode == RATE:
            return index / self.pace.value
        return max(0.0, (time_us - self.first_time_us) / 1_000_000 / self.pace.value)


def loop_shift_us(pass_no: int, first_time_us: int, last_time_us: int, count: int) -> int:
    """How far pass `pass_no` of a looping replay moves event times, so time keeps going forward.

    Each pass starts one average gap after the previous pass ended (1 s when the file has one event).
    """
    span = max(0, last_time_us - first_time_us)
    gap = span // (count - 1) if count > 1 and span else 1_000_000
    return pass_no * (span + max(gap, 1))


def first_pass_after(after_time_us: int, first_time_us: int, last_time_us: int, count: int) -> int:
    """The first pass of a looping replay whose every event is later than `after_time_us`.

    Pass p's events lie in [first + shift(p), last + shift(p)], shift(p) = `loop_shift_us(p, ...)`
    = p * step, so they are all later than t when first + p * step > t. Pass 0 when t < first.
    """
    if after_time_us < first_time_us:
        return 0
    step = loop_shift_us(1, first_time_us, last_time_us, count)
    return (after_time_us - first_time_us) // step + 1
