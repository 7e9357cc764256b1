"""App specs, aggregates and the shipped apps' files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from stream_apps.aggregates import Aggregate, parse_aggregate
from stream_apps.catalog import SPECS_DIR, resolve_spec, shipped_specs
from stream_apps.spec import load_spec, parse_condition, spec_from_mapping, spec_to_mapping


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("count", "count"),
        ("count_distinct:visitor_id", "count_distinct_visitor_id"),
        ("sum:bytes", "sum_bytes"),
        ("min:status", "min_status"),
        ("max:bytes", "max_bytes"),
        ("avg:bytes", "avg_bytes"),
        ("top:5:page", "top_5"),
        ("first:page", "first_page"),
        ("last:page", "last_page"),
        ("duration", "duration_s"),
    ],
)
def test_aggregate_output_names_follow_the_issue(text: str, name: str) -> None:
    assert parse_aggregate(text).output_name == name


@pytest.mark.parametrize("text", ["median:bytes", "sum", "top:page", "top:0:page", "count:x"])
def test_unknown_aggregates_list_the_accepted_spellings(text: str) -> None:
    with pytest.raises(ConfigError, match="top:N:F"):
        parse_aggregate(text)


def test_aggregates_skip_missing_values_like_sql_null() -> None:
    acc = Aggregate("avg", "bytes").new()
    for value in (10, None, 20):
        acc = Aggregate("avg", "bytes").add(acc, value, 0)
    assert Aggregate("avg", "bytes").result(acc) == 15.0
    count = 0
    for value in (10, None, 20):
        count = Aggregate("count").add(count, value, 0)
    assert count == 3


def test_top_n_ranks_by_count_then_value_and_merges() -> None:
    top = Aggregate("top", "page", 2)
    a = top.new()
    for page in ["/b", "/a", "/c", "/b", "/a"]:
        a = top.add(a, page, 0)
    assert top.result(a) == [{"page": "/a", "count": 2}, {"page": "/b", "count": 2}]
    b = top.add(top.new(), "/c", 0)
    b = top.add(b, "/c", 0)
    assert top.result(top.merge(a, b)) == [{"page": "/c", "count": 3}, {"page": "/a", "count": 2}]


def test_first_and_last_use_event_time_not_arrival() -> None:
    first, last = Aggregate("first", "page"), Aggregate("last", "page")
    f = l_ = None
    for t, page in [(30, "/exit"), (10, "/entry"), (20, "/middle")]:
        f, l_ = first.add(f, page, t), last.add(l_, page, t)
    assert (first.result(f), last.result(l_)) == ("/entry", "/exit")


def test_conditions_parse_json_values_and_fail_on_missing_fields() -> None:
    not_bot = parse_condition("is_bot = false")
    assert not_bot.test({"is_bot": False}) is True
    assert not_bot.test({"is_bot": True}) is False
    assert not_bot.test({}) is False
    errors = parse_condition("status >= 500")
    assert errors.test({"status": 503}) is True
    assert errors.test({"status": "oops"}) is False
    assert parse_condition("page != /index").value == "/index"


def test_spec_names_default_sink_topic_and_reject_unknown_fields() -> None:
    spec = spec_from_mapping({"name": "pv", "window": "tumbling:60s", "aggregates": ["count"]})
    assert spec.sink_topic == "analytics.pv"
    assert spec.source == "clickstream.events"
    assert spec.time_field == "event_time"
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['windw'\]"):
        spec_from_mapping(
            {"name": "pv", "windw": "tumbling:60s", "window": "tumbling:60s", "aggregates": ["count"]}
        )
    with pytest.raises(ConfigError, match="'aggregates' is required"):
        spec_from_mapping({"name": "pv", "window": "tumbling:60s"})


def test_spec_refuses_output_fields_that_clash() -> None:
    with pytest.raises(ConfigError, match="repeat or clash"):
        spec_from_mapping({"name": "pv", "window": "tumbling:60s", "aggregates": ["count", "count"]})


def test_spec_round_trips_through_its_mapping() -> None:
    for spec in shipped_specs().values():
        assert spec_from_mapping(spec_to_mapping(spec)) == spec


def test_every_shipped_spec_carries_the_equivalent_kda_sql_as_a_comment() -> None:
    files = sorted(SPECS_DIR.glob("*.toml"))
    assert [f.stem for f in files] == sorted(shipped_specs())
    for path in files:
        text = path.read_text()
        assert "Kinesis Data Analytics SQL" in text, path
        assert "#     SELECT STREAM" in text or "#   SELECT STREAM" in text or "SELECT STREAM" in text, path
        assert load_spec(path).name == path.stem


def test_resolve_spec_by_name_or_path_and_explain_unknown_names(tmp_path: Path) -> None:
    assert resolve_spec("page-views-1m").key_field == "page"
    spec_file = tmp_path / "mine.toml"
    spec_file.write_text('name = "mine"\nwindow = "session:30m"\naggregates = ["count"]\n')
    assert resolve_spec(str(spec_file)).window.kind == "session"
    with pytest.raises(ConfigError, match="shipped apps: active-visitors-5m"):
        resolve_spec("page-views")


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_spec(bad)
