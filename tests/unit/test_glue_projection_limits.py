"""Partition projection against hostile table properties: a pattern that would make a backtracking
reader explode, values Python's int/datetime refuse, huge digits and ranges counted before enumerating,
and one broken table failing only its own queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from queries.engine import Engine
from queries.glue_api import CreateDatabaseInput, CreateTableInput, GlueService
from queries.glue_projection import MAX_VALUES, Constraint, KeyProjection, ProjectionError, parse_projection
from queries.projection_dates import MAX_FIELDS, MAX_PATTERN, DatePattern, steps_between

NOW = datetime(2024, 3, 5, 13, 42, 7, tzinfo=UTC)


def _props(**given: str) -> dict[str, str]:
    return {
        "projection.enabled": "true",
        **{f"projection.dt.{k.replace('_', '.')}": v for k, v in given.items()},
    }


def _refusal(params: dict[str, str], keys: list[tuple[str, str]] | None = None) -> str:
    with pytest.raises(ProjectionError) as caught:
        projection = parse_projection(params, keys or [("dt", "string")])
        assert projection is not None
        projection.partitions({}, NOW)
    return str(caught.value)


def test_the_reviewers_pathological_format_is_refused_and_the_largest_allowed_one_reads_in_one_pass() -> None:
    attack = _props(type="date", format="dH" * 13, interval_unit="DAYS", range="1" * 39 + "x,NOW")
    assert _refusal(attack) == (
        "partition projection of column dt: projection.dt.format '" + "dH" * 13 + "' "
        "has 26 date fields, more than tidelake reads (16)"
    )
    long_format = _props(type="date", format="y" + "-" * MAX_PATTERN, range="1,2")
    assert _refusal(long_format).endswith(
        f"is {MAX_PATTERN + 1} characters long, more than tidelake reads (64)"
    )
    # 16 one-or-two digit fields against 48 digits: a backtracking reader tries ~2^16 splits, this
    # reader takes 2 digits per field once (greedy, as Java's parser) and fails at the 'x'
    widest = DatePattern.parse("dH" * (MAX_FIELDS // 2))
    assert widest.read("1" * 48 + "x") is None
    assert widest.read("1" * 32) == datetime(1970, 1, 11, 11, tzinfo=UTC)  # 2 digits each, the last wins
    assert widest.read("1" * 33) is None  # one digit left over
    assert DatePattern.parse("d").read("1" * 1_000_000) is None  # looks at 2 digits, not a million
    message = _refusal(_props(type="date", format="dH" * 8, interval_unit="DAYS", range="1" * 24 + "x,NOW"))
    assert "'" + "1" * 24 + "x' is neither a date formatted as 'dHdHdHdHdHdHdHdH'" in message


def test_fields_are_read_left_to_right_leaving_digits_for_fixed_width_neighbours() -> None:
    assert DatePattern.parse("yyyyMMdd").read("20240305") == datetime(2024, 3, 5, tzinfo=UTC)
    assert DatePattern.parse("yyyyMMddHH").read("2024030510") == datetime(2024, 3, 5, 10, tzinfo=UTC)
    assert DatePattern.parse("d/M/yyyy").read("5/3/2024") == datetime(2024, 3, 5, tzinfo=UTC)
    assert DatePattern.parse("dd-MMM-yy").read("05-Mar-24") == datetime(2024, 3, 5, tzinfo=UTC)
    assert DatePattern.parse("MMMM yyyy").read("March 2024") == datetime(2024, 3, 1, tzinfo=UTC)
    assert DatePattern.parse("yyyy-MM-dd").read("2024-3-05") is None  # MM is exactly 2 digits
    assert DatePattern.parse("yyyy-MM-dd").read("٢٠٢٤-03-05") is None  # ASCII digits only
    with pytest.raises(ValueError, match="too many pattern letters 'd'"):
        DatePattern.parse("yyyy-MM-ddd")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # formerly re.error: accepted now, a year of 10 digits as Java pads it
        (_props(type="date", format="y" * 20, range="1,2"), "too many pattern letters 'y' (at most 19)"),
        (
            _props(type="integer", range="0,5", interval="²"),
            "projection.dt.interval '²' is not a positive integer",
        ),
        (_props(type="integer", range="0,5", digits="9" * 5000), "projection.dt.digits '9999999999"),
        (
            _props(type="date", format="yyyy-MM-dd", range="2020-01-01,NOW+1000000YEARS"),
            "projection.dt.range 'NOW+1000000YEARS' is outside the dates tidelake reads (years 1-9999)",
        ),
        (
            _props(type="date", format="yyyy-MM-dd", range="NOW-99999999999999999999DAYS,NOW"),
            "projection.dt.range 'NOW-99999999999999999999DAYS' is outside the dates tidelake reads",
        ),
        (_props(type="integer", range="0,3", digits="50000000"), "digits 50000000 is more than 19"),
        (_props(type="integer", range="0,3", digits="20"), "digits 20 is more than 19"),
        (_props(type="integer", range="0," + "9" * 5000), "is not two integers, min,max"),
    ],
)
def test_values_python_refuses_are_projection_errors_naming_the_property(
    params: dict[str, str], message: str
) -> None:
    assert message in _refusal(params)


def test_a_ten_letter_year_reads_and_writes_padded() -> None:
    projection = parse_projection(
        _props(type="date", format="y" * 10, range="0000002020,0000002021"), [("dt", "string")]
    )
    assert projection is not None
    assert [p.path_values for p in projection.partitions({}, NOW)] == [["0000002020"], ["0000002021"]]


def test_digits_up_to_19_still_pad() -> None:
    projection = parse_projection(_props(type="integer", range="1,2", digits="19"), [("dt", "string")])
    assert projection is not None
    assert [p.path_values for p in projection.partitions({}, NOW)] == [["0" * 18 + "1"], ["0" * 18 + "2"]]


def test_counts_are_arithmetic_and_refused_before_enumerating(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_enumeration(*_: object) -> None:
        raise AssertionError("enumerated")

    seconds = _props(
        type="date",
        format="yyyy-MM-dd-HH-mm-ss",
        interval_unit="SECONDS",
        range="1500-01-01-00-00-00,2500-01-01-00-00-00",
    )
    keys = [(f"k{i}", "string") for i in range(4)]
    multi = {"projection.enabled": "true"}
    for key, _ in keys:
        multi |= {f"projection.{key}.type": "integer", f"projection.{key}.range": "1,1000000"}
    monkeypatch.setattr(KeyProjection, "values", no_enumeration)
    assert _refusal(seconds) == (
        "partition projection of column dt enumerates more than 1,000,000 values (tidelake's limit); "
        "narrow its range or interval, or filter it in the WHERE clause"
    )
    assert _refusal(multi, keys).startswith(
        "the query projects 1,000,000,000,000,000,000,000,000 partitions, more than tidelake reads in one "
        "query (100,000); filter the partition keys (k0, k1, k2, k3)"
    )
    monkeypatch.undo()
    projection = parse_projection(multi, keys)
    assert projection is not None
    # equalities on three keys: their values are the literals, not a walk of a million each
    three: dict[str, list[Constraint]] = {
        "k0": [("=", "5")],
        "k1": [("=", "6")],
        "k2": [("in", ("7", "x", "0"))],
    }
    with pytest.raises(ProjectionError, match=r"^the query projects 1,000,000 partitions"):
        projection.partitions(three, NOW)
    four = {**three, "k3": [("=", "1000000")]}
    assert [p.path_values for p in projection.partitions(four, NOW)] == [["5", "6", "7", "1000000"]]
    assert projection.partitions({**four, "k0": [("=", "1000001")]}, NOW) == []


def test_steps_between_counts_like_stepping() -> None:
    jan31 = datetime(2024, 1, 31, tzinfo=UTC)
    assert steps_between(jan31, datetime(2024, 2, 28, tzinfo=UTC), 1, "MONTHS") == 1  # Feb 29 is past it
    assert steps_between(jan31, datetime(2024, 2, 29, tzinfo=UTC), 1, "MONTHS") == 2
    assert steps_between(jan31, datetime(2025, 1, 30, tzinfo=UTC), 1, "YEARS") == 1
    assert steps_between(jan31, datetime(2024, 2, 1, tzinfo=UTC), 1, "DAYS") == 2
    assert steps_between(jan31, datetime(2024, 2, 1, tzinfo=UTC), 10**18, "MILLIS") == 1
    assert steps_between(jan31, datetime(2024, 1, 30, tzinfo=UTC), 1, "DAYS") == 0
    assert MAX_VALUES == 1_000_000


def test_a_range_ending_in_9999_gives_its_values() -> None:
    projection = parse_projection(
        _props(type="date", format="yyyy-MM-dd", range="9999-12-01,9999-12-31"), [("dt", "string")]
    )
    assert projection is not None
    values = [p.path_values[0] for p in projection.partitions({}, NOW)]
    assert (len(values), values[0], values[-1]) == (31, "9999-12-01", "9999-12-31")
    months = parse_projection(
        _props(type="date", format="yyyy-MM", range="9999-11,9999-12"), [("dt", "string")]
    )
    assert months is not None
    assert [p.path_values for p in months.partitions({}, NOW)] == [["9999-11"], ["9999-12"]]


@pytest.fixture
def glue(tmp_path: Path) -> Iterator[tuple[GlueService, Engine]]:
    lake = tmp_path / "lake"
    lake.mkdir()
    service = GlueService(lake, tmp_path / "state")
    engine = Engine(lake, clock=lambda: NOW)
    engine.attach_glue(service.stored_sources)
    service.create_database(CreateDatabaseInput.model_validate({"DatabaseInput": {"Name": "logs"}}))
    yield service, engine
    engine.close()
    service.close()


BROKEN = {
    "format": _props(type="date", format="yyyyyyyyyyyyyyyyyyyy", range="1,2"),
    "interval": _props(type="integer", range="0,5", interval="²"),
    "digits": _props(type="integer", range="0,5", digits="9" * 5000),
    "years": _props(type="date", format="yyyy-MM-dd", range="2020-01-01,NOW+1000000YEARS"),
    "days": _props(type="date", format="yyyy-MM-dd", range="NOW-99999999999999999999DAYS,NOW"),
}


def test_a_broken_projected_table_fails_only_its_own_queries(glue: tuple[GlueService, Engine]) -> None:
    service, engine = glue
    for name, params in [*BROKEN.items(), ("good", _props(type="integer", range="1,2"))]:
        body = {
            "DatabaseName": "logs",
            "TableInput": {
                "Name": name,
                "StorageDescriptor": {
                    "Columns": [{"Name": "v", "Type": "bigint"}],
                    "Location": f"s3://tidelake-lake/{name}/",
                },
                "PartitionKeys": [{"Name": "dt", "Type": "string"}],
                "Parameters": {"classification": "parquet", **params},
            },
        }
        service.create_table(CreateTableInput.model_validate(body))  # Glue stores Parameters as given
    assert engine.run("SELECT 1 AS one").table.to_pylist() == [{"one": 1}]
    assert engine.run("SELECT count(*) AS n FROM logs.good").table.to_pylist() == [{"n": 0}]
    for name in BROKEN:
        with pytest.raises(ProjectionError, match=r"^partition projection of column dt: projection\.dt\."):
            engine.run(f"SELECT count(*) FROM logs.{name}")
    assert engine.run("SELECT 2 AS two").table.to_pylist() == [{"two": 2}]
