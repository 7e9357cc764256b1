import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import ConfigError
from core.lake import NULL_PARTITION
from sinks.prefixes import PrefixTemplate, escape_value, java_to_strftime, random_string

UTC_US = pa.timestamp("us", "UTC")


def _times(*moments: dt.datetime) -> pa.Array:
    return pa.array(list(moments), UTC_US)


def test_default_prefix_is_hive_partitions_by_event_time() -> None:
    template = PrefixTemplate.parse("dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/")
    moments = _times(
        dt.datetime(2019, 1, 22, 0, 26, 16, tzinfo=dt.UTC),
        dt.datetime(2019, 1, 22, 23, 59, 59, tzinfo=dt.UTC),
    )
    assert template.evaluate(2, times=moments).to_pylist() == [
        "dt=2019-01-22/hour=00/",
        "dt=2019-01-22/hour=23/",
    ]


def test_firehose_default_layout_and_quoted_literals() -> None:
    moment = _times(dt.datetime(2024, 3, 9, 7, 5, 1, tzinfo=dt.UTC))
    assert PrefixTemplate.parse("!{timestamp:yyyy/MM/dd/HH}").evaluate(1, times=moment).to_pylist() == [
        "2024/03/09/07/"
    ]
    assert java_to_strftime("yyyy'T'HH:mm:ss") == "%YT%H:%M:%S"
    assert java_to_strftime("yy'%'") == "%y%%"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("../../etc", "..%2F..%2Fetc"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("a/b", "a%2Fb"),
        ("/", "%2F"),
        ("", NULL_PARTITION),
        (None, NULL_PARTITION),
        ("café", "caf%C3%A9"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("a b=c", "a%20b%3Dc"),
        ("100%", "100%25"),
        ("C:\\x", "C%3A%5Cx"),
        (True, "true"),
        (42, "42"),
    ],
)
def test_partition_values_are_escaped_to_one_safe_segment(value: object, escaped: str) -> None:
    assert escape_value(value) == escaped


def test_hostile_values_never_leave_the_dataset_folder(tmp_path: Path) -> None:
    template = PrefixTemplate.parse("page=!{partitionKeyFromQuery:page}/")
    hostile = ["../../../../tmp/x", "..", "/", "", None, "a/../../b", "\u202e\u0000", "x" * 500]
    table = pa.table({"page": pa.array(hostile, pa.string())})
    prefixes = template.evaluate(len(hostile), table=table).to_pylist()
    dataset = tmp_path / "ds"
    for prefix in prefixes:
        target = (dataset / prefix / "f.parquet").resolve()
        assert target.parent.parent == dataset.resolve()
        assert len(prefix.split("/")[0]) <= 130
    assert prefixes[3] == prefixes[4] == f"page={NULL_PARTITION}/"
    assert len(set(prefixes)) == len(hostile) - 1


def test_lambda_keys_error_type_and_random_string() -> None:
    template = PrefixTemplate.parse("country=!{partitionKeyFromLambda:country}/!{firehose:random-string}/")
    out = template.evaluate(2, lambda_keys=[{"country": "IR"}, None], seed="t:0:5").to_pylist()
    assert out == [
        f"country=IR/{random_string('t:0:5')}/",
        f"country={NULL_PARTITION}/{random_string('t:0:5')}/",
    ]
    assert len(random_string("x")) == 11
    errors = PrefixTemplate.parse("!{firehose:error-output-type}/", error_prefix=True)
    assert errors.evaluate(1, error_type="format-conversion-failed").to_pylist() == [
        "format-conversion-failed/"
    ]


def test_prefix_without_trailing_slash_still_names_a_folder() -> None:
    assert PrefixTemplate.parse("static").evaluate(1).to_pylist() == ["static/"]


@pytest.mark.parametrize(
    ("text", "error_prefix", "complaint"),
    [
        ("!{nope:x}/", False, "unknown namespace"),
        ("!{timestamp:yyyy-QQ}/", False, "not supported"),
        ("!{firehose:error-output-type}/", False, "error prefix only"),
        ("!{firehose:other}/", False, "unknown"),
        ("errors/", True, "must contain"),
        ("!{firehose:error-output-type}/!{partitionKeyFromQuery:a}/", True, "not allowed"),
        ("/abs/!{timestamp:yyyy}/", False, "leading"),
        ("../!{timestamp:yyyy}/", False, "not allowed"),
        ("!{timestamp:yyyy'}/", False, "unclosed quote"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(text: str, error_prefix: bool, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        PrefixTemplate.parse(text, error_prefix=error_prefix)
