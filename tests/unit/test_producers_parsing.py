"""Parsers on the shipped samples and on small hand-made inputs, without Kafka."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import re
from pathlib import Path

import duckdb
import orjson
import pytest
from crawlerdetect import CrawlerDetect

import producers.parsing
from core.errors import ConfigError
from core.events import CLICKSTREAM_FIELDS, format_event_time
from producers.accesslog import split_request, unescape
from producers.parsing import detect_format, make_parser, parse_file
from producers.records import BAD_TIME, EMPTY, MALFORMED, MISSING_KEY, NOT_UTF8, TOO_LARGE, event_id_of
from producers.tabular import CsvParser, column_names, csv_header, sniff_delimiter
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
    assert detect_format(tmp_path / "x.tsv", "anything") == "csv"
    assert detect_format(tmp_path / "x.ndjson", "anything") == "jsonl"
    assert detect_format(tmp_path / "x.log", '{"a": 1}') == "jsonl"
    assert detect_format(tmp_path / "x.log", '\ufeff{"a": 1}') == "jsonl"
    assert detect_format(tmp_path / "x.txt", "a;b;c") == "csv"
    assert detect_format(tmp_path / "x.txt", "a\tb") == "csv"
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


# Files as people have them (issue 12): the inputs, with their right values.


def test_csv_with_a_byte_order_mark_and_crlf_sends_every_row(tmp_path: Path) -> None:
    path = tmp_path / "sensors.csv"
    path.write_bytes(b"\xef\xbb\xbfts,sensor,reading\r\n2024-03-01T10:00:04Z,s2,75.9\r\n")
    parsed = parse_file(path, time_field="ts")
    assert parsed.rejects == []
    (record,) = parsed.records
    assert record.line_no == 2
    assert record.event_id == event_id_of("sensors", 2, b"2024-03-01T10:00:04Z,s2,75.9")
    assert record.payload() == {
        "event_id": record.event_id,
        "event_time": "2024-03-01T10:00:04.000000Z",
        "ts": "2024-03-01T10:00:04Z",
        "sensor": "s2",
        "reading": "75.9",
    }


def test_pandas_csv_with_an_unnamed_index_column(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text(",timestamp,item_id,click\n0,2019-11-24 00:00:34.762830+00:00,14,0\n")
    parsed = parse_file(path, time_field="timestamp")
    assert parsed.rejects == []
    (record,) = parsed.records
    assert record.payload() == {
        "event_id": event_id_of("clicks", 2, b"0,2019-11-24 00:00:34.762830+00:00,14,0"),
        "event_time": "2019-11-24T00:00:34.762830Z",
        "column0": "0",
        "timestamp": "2019-11-24 00:00:34.762830+00:00",
        "item_id": "14",
        "click": "0",
    }


def test_access_log_request_with_a_raw_space_in_the_url(tmp_path: Path) -> None:
    log = tmp_path / "apache.log"
    log.write_bytes(
        b'198.51.100.7 - - [14/Jun/2016:15:58:13 -0400] "GET /index.php?x=a b HTTP/1.1" 404 151 "-" "curl/7.43.0"\n'
    )
    (record,) = parse_file(log).records
    payload = record.payload()
    assert (payload["method"], payload["url"], payload["page"]) == ("GET", "/index.php?x=a b", "/index.php")
    assert payload["event_time"] == "2016-06-14T19:58:13.000000Z"
    assert (payload["status"], payload["bytes"], payload["user_agent"]) == (404, 151, "curl/7.43.0")


# The same rules, case by case.

#: Header lines and the names DuckDB's read_csv gives them (checked against duckdb below).
HEADER_NAMES = [
    (",timestamp,item_id,click", ["column0", "timestamp", "item_id", "click"]),
    ("a,a,,b,a,a_1,", ["a", "a_1", "column2", "b", "a_2", "a_1_1", "column6"]),
    ("x,,,,,,,,,,,a,a", ["x", *(f"column{i:02d}" for i in range(1, 11)), "a", "a_1"]),
    ("a,b,c,d,e,f,g,h,i,", ["a", "b", "c", "d", "e", "f", "g", "h", "i", "column9"]),
    ('column1,,"",  ,"  q ",column1_1', ["column1", "column1_1", "column2", "column3", "q", "column1_1_1"]),
    ("x,X,x_1,X_1", ["x", "X_1", "x_1_1", "X_1_2"]),
    (",column0", ["column0", "column0_1"]),
    (" \t a \t ,b", ["\t a \t", "b"]),
]


@pytest.mark.parametrize(("header", "names"), HEADER_NAMES)
def test_csv_header_names_are_those_duckdb_gives(tmp_path: Path, header: str, names: list[str]) -> None:
    assert csv_header(header) == names
    path = tmp_path / "h.csv"
    path.write_text(header + "\n" + ",".join(str(i) for i in range(len(names))) + "\n")
    relation = duckdb.sql(f"SELECT * FROM read_csv('{path}', header = true, all_varchar = true, delim = ',')")
    assert relation is not None
    assert relation.columns == names


def test_column_names_of_a_bom_header_given_line_by_line_as_the_agent_does() -> None:
    parser = make_parser("csv", "s", header="\ufeffts;Sensor;sensor;")
    assert isinstance(parser, CsvParser)
    assert (parser.header, parser.delimiter) == (["ts", "Sensor", "sensor_1", "column3"], ";")
    record = parser.parse("1709287200;a;b;c", b"1709287200;a;b;c", 2)
    assert record.fields == {"ts": "1709287200", "Sensor": "a", "sensor_1": "b", "column3": "c"}
    assert column_names([""]) == ["column0"]


@pytest.mark.parametrize(
    ("sample", "complete", "delimiter"),
    [
        ("a,b,c\n1,2,3\n", True, ","),
        ("a\tb\tc\n1\t2,5\t3\n", True, "\t"),
        ("Datum;Betrag\n2024-03-01;12,50\n2024-03-02;7,00\n", True, ";"),
        ('id;note\n1;"a, b, c"\n', True, ";"),  # commas inside quotes do not count
        ("a|b\n1|2\n", True, "|"),
        ("a;b,c\n1;2,3\n", True, ","),  # a tie of consistent widths goes to the comma
        ("a;b;c\n1;2;3\n4;5", False, ";"),  # the cut-off last row is not held against `;`
        ("a;b;c,d\n1;2;3\n", True, ";"),  # only `;` splits every row alike
        ("single\n1\n", True, ","),
    ],
)
def test_delimiter_sniffing(sample: str, complete: bool, delimiter: str) -> None:
    assert sniff_delimiter(sample, complete) == delimiter


@pytest.mark.parametrize(
    ("logged", "sent"),
    [
        ('say \\"hi\\"', 'say "hi"'),  # Apache: \" and \\
        ("C:\\\\tmp", "C:\\tmp"),
        ("\\x22quoted\\x22 C:\\x5Cdir", '"quoted" C:\\dir'),  # nginx: \xHH for " and \\
        ("a\\tb\\nc\\rd\\be\\vf", "a\tb\nc\rd\be\vf"),  # Apache's C-style whitespace
        ("/caf\\xC3\\xA9 and \\xe2\\x98\\x95", "/café and ☕"),  # UTF-8 bytes, either case of hex
        ("bad \\xff byte", "bad \\xff byte"),  # not UTF-8: stays escaped
        ("\\x16\\x03\\x01", "\x16\x03\x01"),
        ("unknown \\q escape", "unknown \\q escape"),
        ("no escapes", "no escapes"),
    ],
)
def test_access_log_fields_are_unescaped_as_apache_and_nginx_escape_them(logged: str, sent: str) -> None:
    assert unescape(logged) == sent


@pytest.mark.parametrize(
    ("request_line", "method", "url"),
    [
        ("GET /index.php?x=a b HTTP/1.1", "GET", "/index.php?x=a b"),
        ("GET /a  b HTTP/1.0", "GET", "/a  b"),
        ("POST /form HTTP/2.0", "POST", "/form"),
        ("M-SEARCH * HTTP/1.1", "M-SEARCH", "*"),
        ("PROPFIND /dav/ HTTP/1.1", "PROPFIND", "/dav/"),
        ("GET /", "GET", "/"),  # HTTP/0.9
        ("GET /no version but spaces", "GET", "/no version but spaces"),  # cut by LimitRequestLine
        ("-", None, None),  # nothing was sent (408)
        ("", None, None),
        ("GET", None, None),
        ("\x16\x03\x01\x00\\xa5\x01", None, None),  # a TLS handshake on the HTTP port
        ('"quoted" /x HTTP/1.1', None, None),  # a quote is not a token character
    ],
)
def test_request_line_is_split_into_method_and_url(
    request_line: str, method: str | None, url: str | None
) -> None:
    assert split_request(request_line) == (method, url)


def test_zanbil_event_ids_are_the_hash_of_each_line_and_unchanged(zanbil) -> None:
    raw_lines = ZANBIL.read_bytes().split(b"\n")[:-1]
    assert [r.event_id for r in zanbil.records] == [
        event_id_of("zanbil-access-10k", n, raw) for n, raw in enumerate(raw_lines, 1)
    ]
    # The ids of every line as published before files were read as people have them (issue 12).
    digest = hashlib.sha256("\n".join(r.event_id for r in zanbil.records).encode()).hexdigest()
    assert digest == "081f69d121f3fcf31d3fc802544929d9e6529bf35fdff20f4995d6a25d826992"
    assert zanbil.records[0].event_id == "de8da95bcdcce7940424a9ae1d8d4257"


def test_zanbil_escaped_fields_are_published_as_sent(zanbil) -> None:
    by_line = {r.line_no: r.fields for r in zanbil.records}
    assert by_line[1304]["user_agent"] == '"nlpproject.info research"'
    assert by_line[2969]["page"] == "/image/29201"
    assert by_line[2969]["url"].startswith("/image/29201?name=ست-کالسکه-و-کریر")
    assert by_line[9259]["user_agent"].endswith("Safari/537.36\tChrome 65.0")


def test_a_multi_line_csv_record_is_one_record_with_the_line_and_bytes_of_all_its_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(b'id,ts,note\r\n1,1709287200,"one\r\ntwo\r\n\r\nthree"\r\n2,1709287201,x\r\n')
    parsed = parse_file(path)
    first, second = parsed.records
    assert (first.line_no, first.fields["note"]) == (2, "one\r\ntwo\r\n\r\nthree")
    assert first.event_id == event_id_of("notes", 2, b'1,1709287200,"one\r\ntwo\r\n\r\nthree"')
    assert (second.line_no, second.event_id) == (6, event_id_of("notes", 6, b"2,1709287201,x"))


@pytest.mark.parametrize("name", ["quoted-multiline.csv", "excel-semicolon.csv", "events.jsonl"])
def test_records_read_across_tiny_blocks_are_the_same(monkeypatch, name: str) -> None:
    from tests.unit.test_replay_corpus import CORPUS, parse_corpus_file

    whole = parse_corpus_file(CORPUS / name)
    monkeypatch.setattr(producers.parsing, "BLOCK_BYTES", 7)  # every block ends mid-record
    assert parse_corpus_file(CORPUS / name) == whole


def test_csv_line_that_is_not_utf8_is_rejected_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b'ts,name\n1709287200,ok\n1709287201,caf\xe9\n1709287202,"caf\xc3\xa9\nau lait"\n')
    parsed = parse_file(path)
    assert [(r.line_no, r.fields["name"]) for r in parsed.records] == [(2, "ok"), (4, "café\nau lait")]
    (reject,) = parsed.rejects
    assert (reject.line_no, reject.error_type, reject.raw) == (3, NOT_UTF8, b"1709287201,caf\xe9")


def test_blank_lines_are_skipped_in_csv_and_jsonl_but_rejected_in_access_logs(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("ts,a\n\n1709287200,x\n   \n")
    jsonl_path = tmp_path / "a.jsonl"
    jsonl_path.write_text('\n{"ts": 1709287200}\n \t \n')
    log_path = tmp_path / "a.log"
    log_path.write_text('1.2.3.4 - - [01/Feb/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5\n\n')
    assert [(len(p.records), len(p.rejects)) for p in map(parse_file, (csv_path, jsonl_path))] == [(1, 0)] * 2
    assert [(r.line_no, r.error_type) for r in parse_file(log_path).rejects] == [(2, EMPTY)]


def test_csv_without_a_header_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\n\r\n")
    with pytest.raises(ConfigError, match="no header line"):
        parse_file(path)
