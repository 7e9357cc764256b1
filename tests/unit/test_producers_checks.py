"""Replay refuses, before it sends anything, what would only land in the lake's error prefix or the
DLQ: rows without the clickstream fields sent to clickstream.events, a CSV `--time-field` or
`--key-field` the file does not have. And the broker's advice names the data dir it needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import BrokerSettings, load_settings
from producers.pacing import Pace
from producers.replay import Replayer, ReplayOptions
from tidelake.broker import LocalBroker
from tidelake.commands.broker import _command

DATA = Path(__file__).resolve().parents[2] / "data"
#: Nothing listens here: every refusal below comes before Kafka is asked anything.
NO_BROKER = load_settings(kafka={"bootstrap_servers": "127.0.0.1:9", "request_timeout_ms": 1000})


def _replay(path: Path, topic: str, **options: str) -> None:
    asyncio.run(
        Replayer(NO_BROKER, ReplayOptions(path, topic, Pace.from_flags(max_speed=True), **options)).run()
    )


def test_a_csv_into_clickstream_events_is_refused_with_the_topic_to_use() -> None:
    sensors = DATA / "sensors" / "sensors.csv"
    with pytest.raises(ConfigError) as refused:
        _replay(sensors, "clickstream.events", time_field="ts")
    assert str(refused.value) == (
        f"{sensors} (csv) does not hold clickstream events: its rows have ts, sensor, reading but no "
        "visitor_id, is_bot, source, which every event on clickstream.events has (core/events.py), so "
        "the clickstream-events delivery stream would put every one in the lake's error prefix. Nothing "
        "was sent. Replay it into a topic of its own (--topic sensors); or, if it is a web-server access "
        "log, give --format combined."
    )


def test_jsonl_with_every_clickstream_field_passes_the_check(tmp_path: Path) -> None:
    """Only the check is under test: it lets the file through, so the replay goes on to Kafka."""
    from producers.parsing import iter_parsed
    from producers.topic_fit import first_record_checked

    events = tmp_path / "exported.jsonl"
    events.write_text(
        "[1]\n"
        '{"event_time": "2019-01-22T00:00:00Z", "visitor_id": "v", "is_bot": false, "source": "x", "page": "/"}\n'
    )
    fmt, _, items = iter_parsed(events)
    checked = list(first_record_checked(items, "clickstream.events", events, fmt))
    assert [type(item).__name__ for item in checked] == ["Reject", "Record"]


def test_a_csv_time_or_key_field_the_file_lacks_is_refused_with_its_fields() -> None:
    sensors = DATA / "sensors" / "sensors.csv"
    with pytest.raises(ConfigError) as wrong_time:
        _replay(sensors, "sensors", time_field="time")
    assert (
        str(wrong_time.value)
        == f"--time-field 'time' is not a field of {sensors}; its fields: ts, sensor, reading"
    )
    with pytest.raises(ConfigError) as wrong_key:
        _replay(sensors, "sensors", time_field="ts", key_field="id")
    assert (
        str(wrong_key.value)
        == f"--key-field 'id' is not a field of {sensors}; its fields: ts, sensor, reading"
    )


def test_broker_advice_names_the_data_dir_and_port_it_needs(tmp_path: Path) -> None:
    default = LocalBroker(BrokerSettings())
    assert (_command("stop", default), _command("start", default)) == (
        "tidelake broker stop",
        "tidelake broker start",
    )
    own = LocalBroker(load_settings(broker={"port": 19092, "data_dir": tmp_path / "my kb"}).broker)
    assert _command("stop", own) == f"tidelake broker stop --data-dir '{tmp_path / 'my kb'}'"
    assert _command("start", own) == f"tidelake broker start --port 19092 --data-dir '{tmp_path / 'my kb'}'"


def test_summaries_agree_in_number(capsys: pytest.CaptureFixture[str]) -> None:
    from producers.replay import ReplaySummary
    from tidelake.commands.produce import _report

    _report(ReplaySummary(1, 0, 0.5, "sensors"), False, "replay")
    _report(ReplaySummary(10_000, 1, 2.0, "sensors"), False, "generate")
    assert capsys.readouterr().out == (
        "replay: sent 1 event to sensors, rejected 0 (in sensors.dlq), 0.50 s, 2 events/s\n"
        "generate: sent 10,000 events to sensors, rejected 1 (in sensors.dlq), 2.00 s, 5,000 events/s\n"
    )
