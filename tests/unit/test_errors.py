import pytest

import core.errors as errors
from core.errors import (
    BrokerToolMissing,
    BrokerUnavailable,
    ConfigError,
    QueryRefused,
    RecordError,
    SchemaError,
    SinkWriteError,
    TidelakeError,
)


def test_every_public_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), TidelakeError), name


@pytest.mark.parametrize(
    ("error", "retriable", "exit_code"),
    [
        (TidelakeError("x"), False, 1),
        (ConfigError("x"), False, 2),
        (BrokerUnavailable("x"), True, 1),
        (BrokerToolMissing("x"), False, 2),
        (SinkWriteError("x"), True, 1),
        (QueryRefused("x"), False, 2),
    ],
)
def test_retriable_and_exit_code_per_class(error: TidelakeError, retriable: bool, exit_code: int) -> None:
    assert error.retriable is retriable
    assert error.exit_code == exit_code


def test_retriable_can_be_overridden_per_instance() -> None:
    assert SinkWriteError("disk full", retriable=False).retriable is False


def test_record_errors_carry_error_type_and_position() -> None:
    error = SchemaError("status is not an int", position="clickstream.events[2]@41")
    assert isinstance(error, RecordError)
    assert error.error_type == "format-conversion-failed"
    assert error.position == "clickstream.events[2]@41"
    assert str(error) == "status is not an int"


def test_chained_cause_is_kept() -> None:
    cause = OSError(28, "No space left on device")
    try:
        try:
            raise cause
        except OSError as exc:
            raise SinkWriteError("could not write lake/x.parquet: disk full") from exc
    except SinkWriteError as caught:
        assert caught.__cause__ is cause
