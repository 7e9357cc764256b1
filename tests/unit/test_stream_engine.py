"""The windowing engine against the DuckDB oracle, with Kafka partitions simulated in memory."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import zlib
from typing import Any

import pytest

from core.dead_letters import DeadLetter
from stream_apps.engine import WindowEngine
from stream_apps.records import Record
from stream_apps.spec import spec_from_mapping
from tests.stream_events import clickstream
from tests.stream_oracle import expected_rows, last_per_window, row_sort_key

ALL_AGGS = ["count", "count_distinct:page", "sum:bytes", "min:status", "max:bytes", "avg:bytes", "top:3:page"]


def spec_for(window: str, **extra: Any):
    data = {"name": "t", "window": window, "aggregates": ALL_AGGS, "key_field": "visitor_id"}
    data.update(extra)
    return spec_from_mapping(data)


def run_engine(spec, events, partitions: int = 4, batch: int = 7, interleave_seed: int = 3) -> list[dict]:
    """Feed events partitioned by key (in file order per partition), batches interleaved unevenly."""
    by_partition: dict[int, list] = {p: [] for p in range(partitions)}
    for event in events:
        p = zlib.crc32(event["visitor_id"].encode()) % partitions
        by_partition[p].append(
            Record(len(by_partition[p]), event["visitor_id"].encode(), json.dumps(event).encode())
        )
    engine = WindowEngine(spec, list(range(partitions)), now_s=0.0)
    cursors = dict.fromkeys(by_partition, 0)
    turn = interleave_seed
    while any(cursors[p] < len(by_partition[p]) for p in by_partition):
        for p in by_partition:
            turn = (turn * 7 + 3) % 11
            take = batch * (turn + 1)
            chunk = by_partition[p][cursors[p] : cursors[p] + take]
            cursors[p] += len(chunk)
            engine.process(p, chunk, now_s=1.0)
            engine.advance(1.0)
    engine.advance(1_000.0)  # every partition idle: everything closes
    return [json.loads(value) for _, value in engine.outbox.rows]


@pytest.mark.parametrize(
    "window", ["tumbling:60s", "hopping:300s/60s", "sliding:60s", "session:30s", "stagger:60s"]
)
def test_final_rows_equal_duckdb_group_by_for_each_window_kind(window: str) -> None:
    spec = spec_for(window)
    events = clickstream(600, seed=11)
    rows = run_engine(spec, events)
    assert sorted(rows, key=row_sort_key) == expected_rows(events, spec)
    assert len(rows) == len(last_per_window(rows, spec))  # exactly one final row per window


def test_global_window_without_key_filters_and_derived_error_rate() -> None:
    spec = spec_from_mapping(
        {
            "name": "t",
            "window": "tumbling:60s",
            "aggregates": ["count", "sum:is_error", "avg:is_error", "count_distinct:visitor_id"],
            "filters": ["is_bot = false"],
            "derive": {"is_error": "status >= 500"},
        }
    )
    events = clickstream(800, seed=5)
    rows = run_engine(spec, events)
    expected = expected_rows(events, spec)
    assert sorted(rows, key=row_sort_key) == expected
    assert sum(r["count"] for r in rows) == sum(1 for e in events if not e["is_bot"])


def test_session_rows_carry_entry_exit_page_and_length() -> None:
    spec = spec_for("session:30s", aggregates=["count", "first:page", "last:page", "duration"])
    events = clickstream(400, seed=9)
    rows = run_engine(spec, events)
    assert sorted(rows, key=row_sort_key) == expected_rows(events, spec)


def _records(events: list[dict], first_offset: int = 0) -> list[Record]:
    return [Record(first_offset + i, None, json.dumps(e).encode()) for i, e in enumerate(events)]


def _event(time: str, page: str = "/", **extra: Any) -> dict:
    return {"event_time": time, "page": page, "visitor_id": "v", **extra}


def test_idle_close_fires_at_idle_timeout_and_not_before() -> None:
    spec = spec_from_mapping(
        {"name": "t", "window": "session:30m", "aggregates": ["count"], "idle_timeout": "10s"}
    )
    engine = WindowEngine(spec, [0, 1], now_s=100.0)
    engine.process(0, _records([_event("2019-01-22T00:00:00.000000Z")]), now_s=105.0)
    assert engine.advance(109.999) == 0  # partition 1 idle since 100 s, partition 0 live until 115 s
    assert engine.advance(114.999) == 0
    assert engine.advance(115.0) == 1
    assert [json.loads(v)["count"] for _, v in engine.outbox.rows] == [1]


def test_idle_partition_stops_holding_back_the_watermark() -> None:
    spec = spec_from_mapping(
        {"name": "t", "window": "tumbling:60s", "aggregates": ["count"], "idle_timeout": "10s"}
    )
    engine = WindowEngine(spec, [0, 1], now_s=0.0)
    engine.process(
        0, _records([_event("2019-01-22T00:00:10.000000Z"), _event("2019-01-22T00:01:10.000000Z")]), 1.0
    )
    assert engine.advance(9.0) == 0  # partition 1 has delivered nothing yet and is not idle
    assert engine.advance(10.0) == 1  # now it is idle: partition 0's watermark closes minute 0
    assert engine.open_windows() == 1


def test_a_partition_with_records_waiting_is_not_idle_however_long_it_has_not_delivered() -> None:
    """After a pause longer than idle_timeout, the first partition read again must not set the
    watermark alone while the other still has records to read (they would all be late)."""
    spec = spec_from_mapping(
        {"name": "t", "window": "tumbling:60s", "aggregates": ["count"], "idle_timeout": "10s"}
    )
    engine = WindowEngine(spec, [0, 1], now_s=0.0)
    engine.process(0, _records([_event("2019-01-22T00:00:10.000000Z")]), 1.0)
    engine.process(1, _records([_event("2019-01-22T00:00:20.000000Z")]), 1.0)
    assert engine.advance(2.0) == 0
    # 100 s later partition 0 delivers minutes 1-5; partition 1 has a backlog not read yet
    later = [_event(f"2019-01-22T00:0{minute}:30.000000Z") for minute in range(1, 6)]
    engine.process(0, _records(later, first_offset=1), 100.0)
    engine.note_waiting([1], 100.0)
    assert engine.advance(100.0) == 0  # partition 1 holds the watermark at 00:00:20
    backlog = [_event("2019-01-22T00:00:50.000000Z"), _event("2019-01-22T00:05:40.000000Z")]
    engine.process(1, _records(backlog, first_offset=1), 101.0)
    assert engine.counters.late == 0
    assert engine.advance(101.0) == 5  # minutes 0-4 close, minute 0 with all three of its events
    assert [json.loads(v)["count"] for _, v in engine.outbox.rows] == [3, 1, 1, 1, 1]


def test_after_every_partition_went_idle_the_first_to_deliver_does_not_set_the_watermark_alone() -> None:
    """A stack that waited longer than idle_timeout for its first replay: partition 0's batch comes
    a moment before partition 1's, whose events are earlier; none of them is late."""
    spec = spec_from_mapping(
        {"name": "t", "window": "tumbling:60s", "aggregates": ["count"], "idle_timeout": "10s"}
    )
    engine = WindowEngine(spec, [0, 1], now_s=0.0)
    assert engine.advance(60.0) == 0  # idle from the start, nothing open
    later = [_event(f"2019-01-22T00:0{minute}:30.000000Z") for minute in range(0, 5)]
    engine.process(0, _records(later), 60.0)
    assert engine.advance(60.0) == 0  # partition 1 has 10 s to deliver
    engine.process(
        1, _records([_event("2019-01-22T00:00:10.000000Z"), _event("2019-01-22T00:04:40.000000Z")]), 60.2
    )
    assert engine.advance(60.2) == 4  # minutes 0-3 close by both partitions' watermark
    assert (engine.counters.late, [json.loads(v)["count"] for _, v in engine.outbox.rows]) == (
        0,
        [2, 1, 1, 1],
    )
    assert engine.advance(70.2) == 1  # then both are idle: minute 4 closes


def test_watermark_waits_for_allowed_lateness() -> None:
    spec = spec_from_mapping(
        {"name": "t", "window": "tumbling:60s", "aggregates": ["count"], "allowed_lateness": "5s"}
    )
    engine = WindowEngine(spec, [0], now_s=0.0)
    engine.process(
        0, _records([_event("2019-01-22T00:00:10.000000Z"), _event("2019-01-22T00:01:04.999999Z")]), 1.0
    )
    assert engine.advance(1.0) == 0
    engine.process(0, _records([_event("2019-01-22T00:00:59.000000Z")], 2), 1.0)  # out of order, in time
    engine.process(0, _records([_event("2019-01-22T00:01:05.000000Z")], 3), 1.0)
    assert engine.advance(1.0) == 1
    assert json.loads(engine.outbox.rows[0][1])["count"] == 2
    assert engine.counters.late == 0


def test_late_events_are_routed_with_position_and_counted() -> None:
    spec = spec_from_mapping({"name": "t", "window": "tumbling:60s", "aggregates": ["count"]})
    engine = WindowEngine(spec, [0], now_s=0.0)
    engine.process(
        0, _records([_event("2019-01-22T00:00:10.000000Z"), _event("2019-01-22T00:02:00.000000Z")]), 1.0
    )
    engine.advance(1.0)
    engine.process(0, _records([_event("2019-01-22T00:00:30.000000Z", event_id="x")], 2), 1.0)
    assert engine.counters.late == 1
    assert engine.counters.late_only == 1
    [(_, value)] = engine.outbox.late
    late = json.loads(value)
    assert (late["partition"], late["offset"], late["event"]["event_id"]) == (0, 2, "x")
    assert late["watermark"] == "2019-01-22T00:02:00.000000Z"
    c = engine.counters
    assert c.events_in == c.windowed + c.filtered + c.late_only + c.errors == 3


def test_bad_records_go_to_the_error_outbox_with_the_dead_letter_contract() -> None:
    spec = spec_from_mapping({"name": "t", "window": "tumbling:60s", "aggregates": ["count"]})
    engine = WindowEngine(spec, [3], now_s=0.0)
    before = dt.datetime.now(dt.UTC)
    bad = [
        Record(7, b"k", b"{not json"),
        Record(8, None, b'{"event_time": 5}'),
        Record(9, b"k9", b'{"page": "/"}'),
        Record(10, None, b'{"event_time": "yesterday"}'),
        Record(11, None, b"[1, 2]"),
        Record(12, None, None),
    ]
    engine.process(3, bad, 1.0)
    after = dt.datetime.now(dt.UTC)
    assert engine.counters.errors == 6
    assert engine.offsets == {3: 13}
    assert [(key, value) for key, value, _ in engine.outbox.errors] == [
        (b"k", b"{not json"),
        (None, b'{"event_time": 5}'),
        (b"k9", b'{"page": "/"}'),
        (None, b'{"event_time": "yesterday"}'),
        (None, b"[1, 2]"),
        (None, b""),
    ]
    letters = [DeadLetter.from_headers(headers) for _, _, headers in engine.outbox.errors]
    assert all(letter.time is not None and before <= letter.time <= after for letter in letters)
    assert [dataclasses.replace(letter, time=None) for letter in letters] == [
        DeadLetter(type_, message, "stream-app:t", None, "clickstream.events", 3, offset)
        for offset, type_, message in [
            (
                7,
                "malformed-record",
                "not JSON: unexpected character, expected a string key: line 1 column 2 (char 1)",
            ),
            (8, "bad-event-time", "field 'event_time': 5 is not an ISO-8601 time with a UTC offset"),
            (9, "bad-event-time", "no event time: field 'event_time' is absent"),
            (
                10,
                "bad-event-time",
                "field 'event_time': 'yesterday' is not an ISO-8601 time with a UTC offset "
                "(Invalid isoformat string: 'yesterday')",
            ),
            (11, "malformed-record", "not a JSON object but an array"),
            (12, "malformed-record", "no value (a tombstone)"),
        ]
    ]
    # the headers are exactly the contract's, in its order
    assert [name for name, _ in engine.outbox.errors[0][2]] == [
        "error.type",
        "error.message",
        "error.process",
        "error.time",
        "source.topic",
        "source.partition",
        "source.offset",
    ]


def test_emit_changes_updates_end_with_the_final_value() -> None:
    spec = spec_for("tumbling:60s", emit="changes", aggregates=["count", "sum:bytes"])
    events = clickstream(500, seed=3)
    rows = run_engine(spec, events)
    assert len(rows) > len(expected_rows(events, spec))  # updates as well as finals
    assert last_per_window(rows, spec) == expected_rows(events, spec)


def test_snapshot_restore_mid_stream_gives_the_same_rows_as_one_run() -> None:
    import pickle

    spec = spec_for("session:30s", aggregates=["count", "top:2:page"])
    events = clickstream(400, seed=12)
    whole = run_engine(spec, events, partitions=1)
    engine = WindowEngine(spec, [0], now_s=0.0)
    records = [Record(i, None, json.dumps(e).encode()) for i, e in enumerate(events)]
    engine.process(0, records[:150], 1.0)
    engine.advance(1.0)
    restored = WindowEngine(spec, [0], now_s=50.0)
    restored.restore(pickle.loads(pickle.dumps(engine.snapshot())))
    restored.process(0, records[restored.offsets[0] :], 51.0)
    restored.advance(1_000.0)
    rows = [json.loads(v) for _, v in restored.outbox.rows]
    assert sorted(rows, key=row_sort_key) == sorted(whole, key=row_sort_key)


def test_anomaly_score_is_highest_on_the_spike() -> None:
    from stream_apps.anomaly import AnomalyScorer

    scorer = AnomalyScorer(num_trees=30, tree_size=64, shingle_size=2)
    counts = [100 + (i % 5) for i in range(60)]
    counts[45] = 900
    scores = []
    for count in counts:
        row = {"count": count}
        scorer(row)
        scores.append(row["anomaly_score"])
    assert max(range(len(scores)), key=scores.__getitem__) in (45, 46)
    restored = AnomalyScorer(num_trees=30, tree_size=64, shingle_size=2)
    restored.restore(scorer.state())
    assert restored.values == scorer.values


def test_a_null_event_time_is_dead_lettered_even_as_the_first_record_of_a_batch() -> None:
    """The engine reuses the last parsed time while the text repeats; a JSON null at the start of a
    batch must not match that cache's empty start and be windowed at the epoch."""
    spec = spec_from_mapping({"name": "t", "window": "tumbling:60s", "aggregates": ["count"]})
    engine = WindowEngine(spec, [0], now_s=0.0)
    engine.process(
        0,
        [
            Record(0, None, b'{"event_time": null}'),
            Record(1, None, b'{"event_time": "2019-01-22T00:00:05Z"}'),
            Record(2, None, b'{"event_time": null}'),
        ],
        1.0,
    )
    letters = [DeadLetter.from_headers(headers) for _, _, headers in engine.outbox.errors]
    assert [(letter.offset, letter.error_type) for letter in letters] == [
        (0, "bad-event-time"),
        (2, "bad-event-time"),
    ]
    assert (engine.counters.errors, engine.counters.windowed) == (2, 1)


def test_a_restored_anomaly_scorer_scores_as_an_uninterrupted_one() -> None:
    """The TOML [anomaly] scorer's state (the app's snapshot) rebuilds its forest exactly, across the
    forest's rebuild every tree_size shingles."""
    import pickle

    from stream_apps.anomaly import AnomalyScorer

    counts = [100 + (i * 7) % 11 for i in range(80)]
    counts[50] = 900
    whole = []
    scorer = AnomalyScorer(num_trees=10, tree_size=16, shingle_size=3)
    for count in counts:
        row = {"count": count}
        scorer(row)
        whole.append(row["anomaly_score"])
    for cut in (9, 33, 55):
        first = AnomalyScorer(num_trees=10, tree_size=16, shingle_size=3)
        scores = []
        for count in counts[:cut]:
            row = {"count": count}
            first(row)
            scores.append(row["anomaly_score"])
        restored = AnomalyScorer(num_trees=10, tree_size=16, shingle_size=3)
        restored.restore(pickle.loads(pickle.dumps(first.state())))
        for count in counts[cut:]:
            row = {"count": count}
            restored(row)
            scores.append(row["anomaly_score"])
        assert scores == whole
    assert max(range(len(whole)), key=whole.__getitem__) in (50, 51, 52)
