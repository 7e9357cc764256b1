"""The dead-letter header contract: what writers put on a `<topic>.dlq` record and what readers get back."""

from __future__ import annotations

import datetime as dt

import pytest

from core.dead_letters import DeadLetter, stream_app_process
from producers.records import MALFORMED, Reject

WHEN = dt.datetime(2026, 11, 30, 15, 4, 5, 123456, tzinfo=dt.UTC)


def test_a_stream_app_dead_letter_round_trips_through_its_headers() -> None:
    letter = DeadLetter(
        "bad-event-time",
        "no event time: field 'event_time' is absent",
        stream_app_process("page-views-1m"),
        WHEN,
        topic="clickstream.events",
        partition=3,
        offset=1_234_567_890_123,
    )
    headers = letter.headers()
    assert headers == [
        ("error.type", b"bad-event-time"),
        ("error.message", b"no event time: field 'event_time' is absent"),
        ("error.process", b"stream-app:page-views-1m"),
        ("error.time", b"2026-11-30T15:04:05.123456Z"),
        ("source.topic", b"clickstream.events"),
        ("source.partition", b"3"),
        ("source.offset", b"1234567890123"),
    ]
    assert DeadLetter.from_headers(headers) == letter
    assert DeadLetter.from_headers(tuple(headers)) == letter  # aiokafka hands over a tuple


def test_a_producer_reject_writes_the_contract_with_its_file_and_line() -> None:
    reject = Reject(b"GET /broken HTTP", 8899, MALFORMED, "not an access-log line", "data/apache_logs")
    headers = reject.headers("replay", WHEN)
    assert headers == [
        ("error.type", b"malformed-line"),
        ("error.message", b"not an access-log line"),
        ("error.process", b"replay"),
        ("error.time", b"2026-11-30T15:04:05.123456Z"),
        ("source.file", b"data/apache_logs"),
        ("source.line", b"8899"),
    ]
    assert DeadLetter.from_headers(headers) == DeadLetter(
        "malformed-line", "not an access-log line", "replay", WHEN, file="data/apache_logs", line=8899
    )


def test_a_reject_without_process_and_time_names_the_producer_and_now() -> None:
    before = dt.datetime.now(dt.UTC)
    letter = DeadLetter.from_headers(Reject(b"", 2, "empty-line", "empty line", "f.log").headers())
    after = dt.datetime.now(dt.UTC)
    assert (letter.process, letter.file, letter.line) == ("producer", "f.log", 2)
    assert letter.time is not None and before <= letter.time <= after


def test_records_written_by_stream_apps_before_the_contract_are_still_read() -> None:
    old = [
        ("error", b"clickstream.events[2]@41: KeyError: 'event_time'"),
        ("error_type", b"processing-failed"),
        ("app", b"page-views-1m"),
        ("time_field", b"event_time"),
    ]
    assert DeadLetter.from_headers(old) == DeadLetter(
        "processing-failed",
        "clickstream.events[2]@41: KeyError: 'event_time'",
        "stream-app:page-views-1m",
        topic="clickstream.events",
        partition=2,
        offset=41,
    )


def test_an_old_message_without_a_position_is_kept_whole() -> None:
    letter = DeadLetter.from_headers([("error", b"KeyError: 'event_time'"), ("error_type", b"x")])
    assert letter == DeadLetter("x", "KeyError: 'event_time'")


def test_the_contract_names_win_over_the_old_ones() -> None:
    mixed = [
        ("error", b"clickstream.events[2]@41: old"),
        ("error_type", b"processing-failed"),
        ("app", b"old-app"),
        ("error.type", b"bad-event-time"),
        ("error.message", b"new"),
        ("error.process", b"stream-app:new-app"),
        ("source.topic", b"other"),
        ("source.partition", b"0"),
        ("source.offset", b"5"),
    ]
    assert DeadLetter.from_headers(mixed) == DeadLetter(
        "bad-event-time", "new", "stream-app:new-app", topic="other", partition=0, offset=5
    )


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("error.type", None), ("error.message", None), ("error.time", None)],
        [("error.type", b"\xff\xfe"), ("error.message", b"\xc3"), ("source.file", b"\x80")],
        [("error.time", b"yesterday"), ("source.partition", b"three"), ("source.offset", b"-1")],
        [("error.time", b"2026-11-30T15:04:05"), ("source.line", b"\xd9\xa3")],  # no offset; Arabic 3
        [("source.partition", b"2147483648"), ("source.offset", b"9223372036854775808")],  # too large
        [("source.line", b"1_000"), ("source.line", b" 7")],
        ["not a pair", ("a", "b", "c"), (7, b"x"), ("error.process", 7)],
    ],
)
def test_missing_or_unreadable_headers_give_none_never_an_exception(headers) -> None:
    letter = DeadLetter.from_headers(headers)
    assert (letter.error_type, letter.process, letter.time) == (None, None, None)
    assert (letter.topic, letter.partition, letter.offset, letter.file, letter.line) == (None,) * 5
    assert letter.message is None


def test_a_repeated_header_keeps_its_last_value_even_when_unreadable() -> None:
    assert DeadLetter.from_headers([("error.type", b"a"), ("error.type", b"b")]).error_type == "b"
    assert DeadLetter.from_headers([("error.type", b"a"), ("error.type", b"\xff")]).error_type is None


def test_a_time_with_another_offset_is_read_as_utc() -> None:
    letter = DeadLetter.from_headers([("error.time", b"2026-11-30T16:04:05.123456+01:00")])
    assert letter.time == WHEN
    assert letter.time.tzinfo == dt.UTC
