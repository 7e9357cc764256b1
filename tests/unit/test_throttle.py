import pytest

from core.throttle import Throttle


def test_first_call_is_due_even_when_the_clock_starts_at_zero() -> None:
    throttle = Throttle(60.0, clock=lambda: 0.0)
    assert throttle.due() is True
    assert throttle.due() is False


def test_due_once_per_interval() -> None:
    throttle = Throttle(1.0)
    moments = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0)
    assert [throttle.due(t) for t in moments] == [True, False, False, True, False, True]


def test_reset_restarts_the_interval() -> None:
    throttle = Throttle(1.0)
    assert throttle.due(10.0) is True
    throttle.reset(10.8)
    assert throttle.due(11.5) is False
    assert throttle.due(11.8) is True


def test_a_zero_interval_is_always_due_and_a_negative_one_is_refused() -> None:
    throttle = Throttle(0.0)
    assert [throttle.due(1.0), throttle.due(1.0)] == [True, True]
    with pytest.raises(ValueError, match="must be >= 0 seconds, got -1"):
        Throttle(-1)
