"""Athena's execution parameters as tidelake reads them: SQL literals to typed values, `?` counts, EXECUTE."""

import datetime as dt
from decimal import Decimal

import pytest

from queries.athena_params import ParameterError, bind, literal, placeholders, split_values
from queries.prepared import execute_values, parse_deallocate, parse_execute, parse_prepare


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'404'", "404"),
        ("'it''s'", "it's"),
        ("''", ""),
        ("404", 404),
        (" -7 ", -7),
        ("2.50", Decimal("2.50")),
        (".5", Decimal("0.5")),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("TRUE", True),
        ("false", False),
        ("NULL", None),
        ("DATE '2026-11-23'", dt.date(2026, 11, 23)),
        ("timestamp '2026-11-23 07:00:00.125'", dt.datetime(2026, 11, 23, 7, 0, 0, 125000)),
        ("CAST('2014-07-05' AS DATE)", dt.date(2014, 7, 5)),
        ("cast('5' as integer)", 5),
        ("CAST(12.345 AS DECIMAL(10,2))", Decimal("12.35")),
        ("CAST(404 AS VARCHAR)", "404"),
        ("CAST('true' AS BOOLEAN)", True),
        ("CAST(NULL AS DATE)", None),
        ("CAST(2 AS DOUBLE)", 2.0),
    ],
)
def test_literals_become_typed_values(text: str, value: object) -> None:
    got = literal(text)
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "status",
        "'unclosed",
        "'a' || 'b'",
        "(SELECT 1)",
        "404; DROP VIEW clickstream_events",
        "'); COPY (SELECT 1) TO '/tmp/x' --",
        '"double quoted"',
        "CAST('x' AS DATE)",
        "CAST(1 AS JSON)",
        "now()",
    ],
)
def test_anything_but_a_literal_is_refused(text: str) -> None:
    with pytest.raises(ParameterError):
        literal(text)


def test_placeholders_are_counted_by_duckdbs_parser_outside_strings_and_comments() -> None:
    assert placeholders("SELECT 1") == 0
    assert placeholders("SELECT * FROM t WHERE a = ? AND b = ?") == 2
    assert placeholders("SELECT '?' AS q FROM t WHERE a = ? -- and b = ?") == 1
    assert placeholders("SELECT * FROM t WHERE a = $1 OR b = $1") == 1
    assert placeholders("SELEC * FROM t WHERE a = ?") is None  # the run reports DuckDB's syntax error


def test_bind_checks_the_count_with_athenas_message() -> None:
    assert bind("SELECT * FROM t WHERE a = ? AND b = ?", ["'x'", "2"]) == ["x", 2]
    with pytest.raises(ParameterError, match=r"^Incorrect number of parameters: expected 2 but found 1$"):
        bind("SELECT * FROM t WHERE a = ? AND b = ?", ["'x'"])
    with pytest.raises(ParameterError, match=r"^Incorrect number of parameters: expected 0 but found 1$"):
        bind("SELECT 1", ["1"])


def test_split_values_keeps_commas_inside_strings_and_parentheses() -> None:
    assert split_values("1, 'a,b', CAST(1.5 AS DECIMAL(4,2)), ?") == [
        "1",
        "'a,b'",
        "CAST(1.5 AS DECIMAL(4,2))",
        "?",
    ]
    for bad in ("1,", "'a", "CAST(1 AS INTEGER"):
        with pytest.raises(ParameterError):
            split_values(bad)


def test_execute_statements_and_their_values() -> None:
    assert parse_execute("EXECUTE my_select1") == ("my_select1", None)
    assert parse_execute("execute my_select3 USING 346078, 12;") == ("my_select3", ["346078", "12"])
    assert parse_execute("SELECT 1") is None
    assert execute_values(None, ["404"]) == ["404"]
    assert execute_values(["?", "'x'", "?"], ["1", "2"]) == ["1", "'x'", "2"]
    with pytest.raises(ParameterError, match="expected 2 but found 1"):
        execute_values(["?", "?"], ["1"])
    with pytest.raises(ParameterError, match="expected 1 but found 2"):
        execute_values(["?"], ["1", "2"])


def test_prepare_and_deallocate_statements() -> None:
    assert parse_prepare("PREPARE my_select2 FROM SELECT * FROM t WHERE year = ?;") == (
        "my_select2",
        "SELECT * FROM t WHERE year = ?",
    )
    assert parse_prepare("prepare x from\nSELECT 1") == ("x", "SELECT 1")
    assert parse_prepare("SELECT 1") is None
    assert parse_deallocate("DEALLOCATE PREPARE my_select2") == "my_select2"
    assert parse_deallocate("DEALLOCATE my_select2") is None
