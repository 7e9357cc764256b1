"""Glue's Expression filters: table-name patterns and partition predicates, evaluated exactly."""

from __future__ import annotations

import pytest

from core.aws_json import AwsError
from queries import glue_expressions
from queries.glue_expressions import MAX_TABLE_PATTERN, partition_predicate, table_pattern

NAMES = ["clickstream_events", "late_events", "page_view_anomalies", "page_views_1m"]
KEYS = [("dt", "date"), ("hour", "int"), ("page", "string")]
PARTS = [
    ["2019-01-21", "23", "/a"],
    ["2019-01-22", "00", "/a"],
    ["2019-01-22", "01", "/b"],
    ["2019-01-22", "04", "/settings/logo"],
    ["2019-01-23", "05", "__HIVE_DEFAULT_PARTITION__"],
]


def chosen(expression: str, keys=KEYS) -> list[list[str]]:
    test = partition_predicate(expression, keys)
    return [p for p in PARTS if test(p)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, NAMES),
        ("", NAMES),
        ("*events*", ["clickstream_events", "late_events"]),
        (".*events.*", ["clickstream_events", "late_events"]),
        ("page*", ["page_view_anomalies", "page_views_1m"]),
        ("events", []),  # the whole name must match
        ("late_events|page_views_1m", ["late_events", "page_views_1m"]),
        ("CLICKSTREAM_EVENTS", ["clickstream_events"]),
        ("page_views_\\d+m", ["page_views_1m"]),
        ("^page.*$", ["page_view_anomalies", "page_views_1m"]),
        ("[a-c]*", ["clickstream_events"]),  # Hive's `*` after a class is still "any run"
        ("[^p]*s", ["clickstream_events", "late_events"]),
        ("page_views_.?m", ["page_views_1m"]),
        ("page_views_1.?m", ["page_views_1m"]),
        ("page_views_..m", []),
        ("*EVENTS|page_view_*", ["clickstream_events", "late_events", "page_view_anomalies"]),
        ("late\\_events", ["late_events"]),
    ],
)
def test_table_patterns_match_whole_names_with_hive_wildcards(
    pattern: str | None, expected: list[str]
) -> None:
    matches = table_pattern(pattern)
    assert [n for n in NAMES if matches(n)] == expected


def test_a_table_pattern_that_is_no_regular_expression_is_invalid_input() -> None:
    with pytest.raises(AwsError) as caught:
        table_pattern("events[")
    assert caught.value.code == "InvalidInputException"


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+b",  # nested quantifiers: exponential backtracking in Python's re, holding the GIL
        "(a|a?)+b",
        "([a-z_]+)+0",
        "(" * 1000,  # RecursionError in re's parser (an HTTP 500)
        "(" * 200,
        "a{2,}",
        "(?i)events",
        "x" * (MAX_TABLE_PATTERN + 1),
        "events\\",
        "[z-a]",
    ],
)
def test_table_patterns_beyond_the_safe_subset_are_invalid_input(pattern: str) -> None:
    with pytest.raises(AwsError) as caught:
        table_pattern(pattern)
    assert caught.value.code == "InvalidInputException"


def test_a_pathological_table_pattern_is_matched_without_backtracking() -> None:
    # `a?`*n `a`*n is exponential for a backtracking matcher; the state-set match is n x n steps
    n = 40
    assert table_pattern("a?" * n + "a" * n)("a" * n) is True
    assert table_pattern("a?" * n + "a" * n)("a" * (n - 1)) is False
    assert table_pattern(".*" * 100 + "b")("a" * 255) is False
    assert table_pattern("a+" * 60 + "b")("a" * 255) is False
    assert table_pattern("a+" * 60)("a" * 255) is True


def test_a_partition_filter_too_deep_to_evaluate_is_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AwsError) as caught:
        partition_predicate("NOT " * 150 + "hour = 1", KEYS)
    assert caught.value.code == "InvalidInputException"
    assert partition_predicate("NOT " * 20 + "hour = 1", KEYS)(PARTS[2]) is True

    def overflow(*_: object) -> None:
        raise RecursionError

    monkeypatch.setattr(glue_expressions, "_compile", overflow)
    with pytest.raises(AwsError) as caught:
        partition_predicate("hour = 1", KEYS)
    assert caught.value.code == "InvalidInputException"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("dt = '2019-01-22' AND hour > 3", [PARTS[3]]),
        ("dt = '2019-01-22'", PARTS[1:4]),
        ("hour > 3", [PARTS[0], PARTS[3], PARTS[4]]),
        ("hour = 1", [PARTS[2]]),  # "01" is the integer 1
        ("3 < hour", [PARTS[0], PARTS[3], PARTS[4]]),
        ("hour <> 0 AND hour != 23", PARTS[2:]),
        ("hour >= 4 OR dt <= '2019-01-21'", [PARTS[0], PARTS[3], PARTS[4]]),
        ("dt < '2019-01-22'", [PARTS[0]]),
        ("hour IN (0, 5)", [PARTS[1], PARTS[4]]),
        ("hour NOT IN (0, 5)", [PARTS[0], PARTS[2], PARTS[3]]),
        ("dt BETWEEN '2019-01-22' AND '2019-01-23'", PARTS[1:]),
        ("hour NOT BETWEEN 1 AND 5", PARTS[:2]),
        ("NOT (dt = '2019-01-22')", [PARTS[0], PARTS[4]]),
        ("page LIKE '/s%'", [PARTS[3]]),
        ("page LIKE '/_'", PARTS[:3]),
        ("page NOT LIKE '/_'", [PARTS[3]]),  # NULL is neither LIKE nor NOT LIKE
        ("page IS NULL", [PARTS[4]]),
        ("page IS NOT NULL", PARTS[:4]),
        ("page = '/a'", PARTS[:2]),
        ("NOT page = '/a'", PARTS[2:4]),
        ("(dt = '2019-01-21' OR dt = '2019-01-23') AND hour > 20", [PARTS[0]]),
        ("DT = '2019-01-21'", [PARTS[0]]),
        ("", PARTS),
        ("   ", PARTS),
    ],
)
def test_partition_predicates_compare_values_as_their_key_types(expression: str, expected: list) -> None:
    assert chosen(expression) == expected


def test_other_key_types_compare_as_their_type() -> None:
    keys = [("ts", "timestamp"), ("price", "decimal(10,2)"), ("n", "bigint")]
    parts = [["2019-01-22 00:00:00", "9.50", "-3"], ["2019-01-22 10:30:00.5", "10.25", "12"]]
    test = partition_predicate("ts > '2019-01-22 10:00:00' AND price > 10 AND n >= 12", keys)
    assert [p for p in parts if test(p)] == [parts[1]]
    test = partition_predicate("n < 0 AND price = 9.5", keys)
    assert [p for p in parts if test(p)] == [parts[0]]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("visitor = 'x'", "Unknown column 'visitor'"),
        ("dt = 'yesterday'", "'yesterday' is not a valid date"),
        ("hour = 'one'", "'one' is not a valid int"),
        ("hour LIKE '0%'", "doesn't support operation 'LIKE'"),
        ("dt LIKE '2019%'", "doesn't support operation 'LIKE'"),
        ("length(page) = 2", "Unsupported expression"),
        ("hour + 1 = 2", "Unsupported expression"),
        ("dt = hour", "Unsupported expression"),
        ("dt = '2019-01-22'; DROP TABLE x", "Unsupported expression"),
        ("dt = '2019-01-22' UNION SELECT 2", "Unsupported expression"),
        ("dt = ", "Unsupported expression"),
        ("hour = NULL", "Unsupported expression"),
        ("dt IN (SELECT 1)", "Unsupported expression"),
    ],
)
def test_expressions_glue_does_not_read_are_invalid_input(expression: str, message: str) -> None:
    with pytest.raises(AwsError) as caught:
        partition_predicate(expression, KEYS)
    assert caught.value.code == "InvalidInputException"
    assert message in caught.value.text


def test_a_filter_on_a_table_without_partition_keys_names_an_unknown_column() -> None:
    with pytest.raises(AwsError) as caught:
        partition_predicate("dt = '2019-01-22'", [])
    assert caught.value.text == "Unknown column 'dt' (partition keys: none: the table has no partition keys)"


def test_a_value_that_does_not_fit_its_key_type_matches_no_comparison() -> None:
    test = partition_predicate("hour >= 0", [("hour", "int")])
    assert [test(["7"]), test(["seven"]), test(["__HIVE_DEFAULT_PARTITION__"])] == [True, False, False]
