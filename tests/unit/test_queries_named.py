import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from core.errors import ConfigError, TableNotFound
from queries import named
from queries.engine import Engine
from tests.unit.queries_lake import event, write_events, write_rows

UTC = dt.UTC


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    write_events(
        tmp_path,
        [
            event("2026-11-23T07:00:00", "v1", "/a"),
            event("2026-11-23T07:10:00", "v1", "/b"),
            event("2026-11-23T08:00:00", "v1", "/a"),  # 50 minutes later: v1's second session
            event("2026-11-23T07:05:00", "v2", "/a"),  # v2 bounces
            event("2026-11-23T07:30:00", "v3", "/c", status=500),
            event("2026-11-23T07:30:30", "v3", "/a", status=404),
            event("2026-11-23T07:40:00", "bot", "/z", is_bot=True),
        ],
    )
    return tmp_path


def run(lake: Path, name: str, **params: str) -> list[dict]:
    query = named.load_all()[name]
    with Engine(lake) as engine:
        named.check_inputs(query, engine)
        return engine.run(query.sql, query.bind(params)).table.to_pylist()


def hour(h: int) -> dt.datetime:
    return dt.datetime(2026, 11, 23, h, tzinfo=UTC)


def test_shipped_named_queries_each_answer_one_question() -> None:
    found = named.load_all()
    assert sorted(found) == [
        "anomalies",
        "bounce_rate",
        "errors_per_minute",
        "late_events",
        "sessions_per_visitor",
        "top_pages_per_hour",
    ]
    assert all(q.question.endswith("?") and q.reads and q.fill for q in found.values())


def test_top_pages_per_hour(lake: Path) -> None:
    assert run(lake, "top_pages_per_hour", top="2") == [
        {"hour_start": hour(7), "rank": 1, "page": "/a", "views": 3},
        {"hour_start": hour(7), "rank": 2, "page": "/b", "views": 1},
        {"hour_start": hour(8), "rank": 1, "page": "/a", "views": 1},
    ]


def test_top_pages_for_one_hour_with_bots(lake: Path) -> None:
    rows = run(lake, "top_pages_per_hour", day="2026-11-23", hour="7", top="10", include_bots="true")
    assert [(r["page"], r["views"]) for r in rows] == [("/a", 3), ("/b", 1), ("/c", 1), ("/z", 1)]


def test_bounce_rate(lake: Path) -> None:
    assert run(lake, "bounce_rate") == [
        {"day": dt.date(2026, 11, 23), "sessions": 4, "bounces": 2, "bounce_rate_pct": Decimal("50.00")}
    ]


def test_bounce_rate_with_a_longer_session_gap(lake: Path) -> None:
    rows = run(lake, "bounce_rate", session_gap_minutes="60")
    assert [(r["sessions"], r["bounces"]) for r in rows] == [(3, 1)]


def test_sessions_per_visitor(lake: Path) -> None:
    assert [
        (r["sessions"], r["visitors"], float(r["pct_of_visitors"])) for r in run(lake, "sessions_per_visitor")
    ] == [
        (1, 2, 66.67),
        (2, 1, 33.33),
    ]


def test_errors_per_minute(lake: Path) -> None:
    minute = dt.datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    assert run(lake, "errors_per_minute") == [
        {
            "minute": minute,
            "requests": 2,
            "errors": 2,
            "server_errors": 1,
            "error_rate_pct": Decimal("100.00"),
        }
    ]
    assert run(lake, "errors_per_minute", min_status="500")[0]["errors"] == 1


def test_late_events_per_app_and_hour(lake: Path) -> None:
    late = [
        ("2026-11-23T07:01:00", "page-views-1m"),
        ("2026-11-23T07:02:00", "page-views-1m"),
        ("2026-11-23T07:03:00", "visitor-sessions"),
        ("2026-11-23T08:00:00", "page-views-1m"),
    ]
    write_rows(
        lake / "late_events" / "dt=2026-11-23" / "hour=07" / "a.parquet",
        [
            {"app": app, "event_time": dt.datetime.fromisoformat(t).replace(tzinfo=UTC), "missed_windows": 1}
            for t, app in late
        ],
    )
    assert run(lake, "late_events") == [
        {"hour_start": hour(7), "app": "page-views-1m", "late_events": 2},
        {"hour_start": hour(7), "app": "visitor-sessions", "late_events": 1},
        {"hour_start": hour(8), "app": "page-views-1m", "late_events": 1},
    ]
    assert run(lake, "late_events", app="visitor-sessions") == [
        {"hour_start": hour(7), "app": "visitor-sessions", "late_events": 1}
    ]


def test_anomalies_highest_score_first(lake: Path) -> None:
    minute = dt.timedelta(minutes=1)
    write_rows(
        lake / "page_view_anomalies" / "dt=2026-11-23" / "hour=07" / "a.parquet",
        [
            {"window_start": hour(7), "window_end": hour(7) + minute, "count": 90, "anomaly_score": 3.5},
            {
                "window_start": hour(7) + minute,
                "window_end": hour(7) + 2 * minute,
                "count": 4,
                "anomaly_score": 9.0,
            },
            {"window_start": hour(6), "window_end": hour(6) + minute, "count": 40, "anomaly_score": 12.0},
        ],
    )
    rows = run(lake, "anomalies", since="2026-11-23T06:30:00Z", min_score="1")
    assert [(r["count"], r["anomaly_score"]) for r in rows] == [(4, 9.0), (90, 3.5)]
    assert [r["count"] for r in run(lake, "anomalies", limit="1")] == [40]


def test_missing_analytics_dataset_names_it_and_how_to_fill_it(lake: Path) -> None:
    with pytest.raises(TableNotFound) as caught:
        run(lake, "anomalies")
    assert str(caught.value) == (
        f"named query 'anomalies' reads dataset 'page_view_anomalies', which is not in the lake at {lake}; "
        "fill it: run the page-view-anomalies stream app and the analytics sink into `page_view_anomalies` "
        "(tidelake demo does both)"
    )


def test_parameters_are_typed() -> None:
    query = named.load_all()["top_pages_per_hour"]
    assert query.bind({"day": "2026-11-23", "hour": "7"}) == {
        "day": dt.date(2026, 11, 23),
        "hour": 7,
        "top": 5,
        "include_bots": False,
    }


def test_bad_parameter_value_says_the_type() -> None:
    query = named.load_all()["top_pages_per_hour"]
    with pytest.raises(ConfigError, match=r"^parameter hour must be INTEGER, got 'seven' \(example: 10\)$"):
        query.bind({"hour": "seven"})


def test_unknown_parameter_lists_the_known_ones() -> None:
    query = named.load_all()["bounce_rate"]
    with pytest.raises(
        ConfigError, match="has no parameter colour; its parameters: day, session_gap_minutes"
    ):
        query.bind({"colour": "red"})


def test_header_without_a_question_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"x.sql has no `-- question:` line"):
        named.parse("x", "SELECT 1")
