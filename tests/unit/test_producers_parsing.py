"""Parsers on the shipped samples and on small hand-made inputs, without Kafka."""

from __future__ import annotations

import collections
import datetime as dt
import re
from pathlib import Path

import orjson
import pytest
from crawlerdetect import CrawlerDetect

from core.errors import ConfigError
from core.events import CLICKSTREAM_FIELDS, format_event_time
from producers.parsing import detect_format, parse_file
from producers.records import BAD_TIME, EMPTY, MALFORMED, MISSING_KEY, NOT_UTF8, TOO_LARGE
from producers.timestamps import TimeFormatter, parse_time

DATA = Path(__file__).resolve().parents[2] / "data"
ZANBIL = DATA / "zanbil-access-10k" / "access-10k.log"
ELASTIC = DATA / "elastic-apache-logs" / "apache_logs"
# The test's own reading of a combined line: client, status, user agent, X-Forwarded-For (if any).
SIMPLE = re.compile(r'^(\S+) .*?" (\d{3}) \S+ "[^"]*" "([^"]*)"(?: "([^"]*)")?$')


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def zanbil():
    return parse_file(ZANBIL)


@pytest.fixture(scope="module")
def elastic():
    return parse_file(ELASTIC)


def test_zanbil_sample_parses_every_line_into_a_clickstream_event(zanbil) -> None:
    assert (zanbil.format, zanbil.source) == ("combined", "zanbil-access-10k")
    assert (len(zanbil.records), len(zanbil.rejects)) == (10_000, 0)
    assert [r.line_no for r in zanbil.records] == list(range(1, 10_001))
    payload = zanbil.records[0].payload()
    assert list(payload) == [name for name, _, _ in CLICKSTREAM_FIELDS]
    assert payload["event_time"] == "2019-01-22T00:26:14.000000Z"  # 03:56:14 +0330
    assert payload["page"] == payload["url"]  # no query string on the first line
    assert zanbil.records[0].to_event().status == 200


def test_zanbil_status_and_visitor_counts_match_an_independent_reading(zanbil) -> None:
    matches = [SIMPLE.match(line) for line in _lines(ZANBIL)]
    assert all(matches)
    statuses = collections.Counter(int(m.group(2)) for m in matches)
    assert collections.Counter(r.fields["status"] for r in zanbil.records) == statuses
    # A visitor is the client (the first X-Forwarded-For hop when there is one) with its user agent.
    visitors = {
        ((m.group(4) or "-").split(",")[0] if m.group(4) not in (None, "-") else m.group(1), m.group(3))
        for m in matches
    }
    assert (
        len({(m.group(1), m.group(3)) for m in matches}) == 639
    )  # SOURCE.md's count, without X-Forwarded-For
    assert len({r.key for r in zanbil.records}) == len(visitors)


def test_is_bot_matches_crawlerdetect_and_flags_every_bot_spider_crawl_slurp_agent(zanbil) -> None:
    agents = [SIMPLE.match(line).group(3) for line in _lines(ZANBIL)]
    detector = CrawlerDetect()
    expected = [bool(detector.isCrawler(agent)) for agent in agents]
    flagged = [bool(r.fields["is_bot"]) for r in zanbil.records]
    assert flagged == expected
    pattern = re.compile(r"bot|spider|crawl|slurp", re.IGNORECASE)
    by_pattern = [i for i, agent in enumerate(agents) if pattern.search(agent)]
    assert all(flagged[i] for i in by_pattern)
    assert sum(flagged) >= len(by_pattern)


def test_no_client_address_is_published(zanbil) -> None:
    clients = {SIMPLE.match(line).group(1) for line in _lines(ZANBIL)}
    published = b"\n".join(orjson.dumps(r.payload()) for r in zanbil.records).decode()
    leaked = [client for client in clients if f'"{client}"' in published or f"{client} " in published]
    assert leaked == []


def test_event_ids_are_unique_and_stable_between_parses(zanbil) -> None:
    ids = [r.event_id for r in zanbil.records]
    assert len(set(ids)) == 10_000
    assert [r.event_id for r in parse_file(ZANBIL).records] == ids


def test_elastic_sample_rejects_exactly_the_line_with_the_unclosed_user_agent(elastic) -> None:
    assert (len(elastic.records), len(elastic.rejects)) == (9_999, 1)
    (reject,) = elastic.rejects
    assert reject.line_no == 8_899
    assert reject.error_type == MALFORMED
    assert reject.raw == ELASTIC.read_bytes().split(b"\n")[8_898]
    assert reject.raw.endswith(b"google.com/bot.html")
    assert reject.position == f"{ELASTIC}:8899"


def test_common_log_format_and_forwarded_for_field(tmp_path: Path) -> None:
    log = tmp_path / "site.log"
    log.write_bytes(
        b'10.0.0.1 - - [01/Feb/2024:10:00:00 +0000] "GET /a?x=1 HTTP/1.0" 404 -\n'
        b'10.0.0.2 - bob [01/Feb/2024:10:00:01 -0100] "POST /b HTTP/1.1" 200 12 "-" "curl/8.0" "203.0.113.9, 10.0.0.2"\n'
        b'10.0.0.3 - - [01/Feb/2024:10:00:02 +0000] "GET /c HTTP/1.1" 200 12 "-" "curl/8.0" "203.0.113.9"\n'
    )
    parsed = parse_file(log)
    assert parsed.format == "combined" and len(parsed.rejects) == 0
    first, second, third = (r.payload() for r in parsed.records)
    assert (first["page"], first["url"], first["status"], first["bytes"], first["user_agent"]) == (
        "/a",
        "/a?x=1",
        404,
        None,
        None,
    )
    assert second["event_time"] == "2024-02-01T11:00:01.000000Z"
    assert (second["method"], second["is_bot"]) == ("POST", True)  # curl is a script
    assert second["visitor_id"] == third["visitor_id"]  # same first X-Forwarded-For hop and agent


def test_bad_lines_become_rejects_with_their_reason(tmp_path: Path) -> None:
    good = b'1.2.3.4 - - [01/Feb/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "Mozilla/5.0"'
    log = tmp_path / "bad.log"
    log.write_bytes(
        b"\n".join([good, b"", b"\xff\xfe not utf-8", b"garbage line", good + b" " * 3000, good]) + b"\n"
    )
    parsed = parse_file(log, fmt="combined", max_line_bytes=2000)
    assert [r.line_no for r in parsed.records] == [1, 6]
    assert [(r.line_no, r.error_type) for r in parsed.rejects] == [
        (2, EMPTY),
        (3, NOT_UTF8),
        (4, MALFORMED),
        (5, TOO_LARGE),
    ]
    assert parsed.rejects[1].raw == b"\xff\xfe not utf-8"


def test_csv_with_time_and_key_fields(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order,user,ts,amount\n1,u1,2024-03-01T10:00:00Z,3.5\n2,,1709287200,1\n3,u3,yesterday,2\n"
    )
    parsed = parse_file(path, time_field="ts", key_field="user")
    assert parsed.format == "csv"
    (record,) = parsed.records
    assert (record.line_no, record.key) == (2, "u1")
    assert record.payload()["event_time"] == "2024-03-01T10:00:00.000000Z"
    assert {k: v for k, v in record.payload().items() if k != "event_id"} == {
        "event_time": "2024-03-01T10:00:00.000000Z",
        "order": "1",
        "user": "u1",
        "ts": "2024-03-01T10:00:00Z",
        "amount": "3.5",
    }
    assert [(r.line_no, r.error_type) for r in parsed.rejects] == [(3, MISSING_KEY), (4, BAD_TIME)]


def test_jsonl_with_epoch_milliseconds_and_guessed_time_field(tmp_path: Path) -> None:
    path = tmp_path / "events.data"
    path.write_text('{"timestamp": 1709287200123, "user": 7}\n[1, 2]\n{"user": 8}\n')
    parsed = parse_file(path, key_field="user")
    assert parsed.format == "jsonl"
    (record,) = parsed.records
    assert record.key == "7"
    assert record.payload()["event_time"] == "2024-03-01T10:00:00.123000Z"
    assert [(r.line_no, r.error_type) for r in parsed.rejects] == [(2, MALFORMED), (3, BAD_TIME)]


def test_format_detection_by_extension_and_content(tmp_path: Path) -> None:
    assert detect_format(tmp_path / "x.csv", "anything") == "csv"
    assert detect_format(tmp_path / "x.ndjson", "anything") == "jsonl"
    assert detect_format(tmp_path / "x.log", '{"a": 1}') == "jsonl"
    assert detect_format(ZANBIL) == "combined"
    with pytest.raises(ConfigError, match="--format"):
        detect_format(tmp_path / "x.txt", "just words")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-01-22T03:56:14+03:30", "2019-01-22T00:26:14.000000Z"),
        ("2019-01-22T00:26:14.5Z", "2019-01-22T00:26:14.500000Z"),
        ("2019-01-22 00:26:14", "2019-01-22T00:26:14.000000Z"),
        ("22/Jan/2019:03:56:14 +0330", "2019-01-22T00:26:14.000000Z"),
        (1548116774, "2019-01-22T00:26:14.000000Z"),
        ("1548116774.25", "2019-01-22T00:26:14.250000Z"),
        (1548116774250, "2019-01-22T00:26:14.250000Z"),
        (1548116774250001, "2019-01-22T00:26:14.250001Z"),
    ],
)
def test_event_time_forms(value: object, expected: str) -> None:
    assert TimeFormatter()(parse_time(value)) == expected


@pytest.mark.parametrize("value", ["", "soon", None, True, "32/Jan/2019:03:56:14 +0330"])
def test_unrecognised_event_times_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_time(value)


def test_time_formatter_agrees_with_the_event_contract() -> None:
    moment = dt.datetime(2026, 11, 23, 22, 5, 7, 123456, tzinfo=dt.UTC)
    micros = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    formatter = TimeFormatter()
    assert formatter(micros) == format_event_time(moment)
    assert formatter(micros + 1) == "2026-11-23T22:05:07.123457Z"


def test_replay_encoding_gives_the_bytes_of_the_payload_on_every_pass(zanbil) -> None:
    from producers.replay import EncodedRecord

    formatter = TimeFormatter()
    for record in zanbil.records[:200]:
        encoded = EncodedRecord(record)
        for pass_no, shift_us in ((0, 0), (1, 2_460_000_000), (77, 189_420_000_123)):
            payload = record.payload(shift_us=shift_us, pass_no=pass_no)
            assert encoded.value(pass_no, shift_us, formatter) == orjson.dumps(payload)
            assert len(encoded.value(pass_no, shift_us, formatter)) + len(encoded.key) == encoded.size
    assert record.payload(pass_no=77)["event_id"] == record.event_id[:-8] + "0000004d"


def test_access_log_records_can_be_keyed_by_another_event_field(tmp_path: Path) -> None:
    log = tmp_path / "site.log"
    log.write_bytes(
        b'10.0.0.1 - - [01/Feb/2024:10:00:00 +0000] "GET /a?x=1 HTTP/1.0" 404 -\n'
        b'10.0.0.2 - - [01/Feb/2024:10:00:01 +0000] "GET /b HTTP/1.1" 200 12 "-" "curl/8.0"\n'
    )
    by_page = parse_file(log, key_field="page")
    assert [r.key for r in by_page.records] == ["/a", "/b"]
    by_agent = parse_file(log, key_field="user_agent")
    assert [r.key for r in by_agent.records] == ["curl/8.0"]
    assert [(r.line_no, r.error_type) for r in by_agent.rejects] == [(1, MISSING_KEY)]
    assert parse_file(log).records[0].key == parse_file(log).records[0].fields["visitor_id"]
