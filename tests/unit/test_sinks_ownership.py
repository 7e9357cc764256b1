"""A dataset belongs to one delivery stream (issue 13, item 3: a second stream from another consumer
group overwrote the demo's files under the same deterministic names)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from sinks.ownership import DatasetClaims, owner_path, read_owner


def test_the_first_stream_claims_a_dataset_and_may_always_come_back(tmp_path: Path) -> None:
    DatasetClaims(tmp_path, "clickstream-events", "tidelake-sink-clickstream-events").claim(
        "clickstream_events"
    )
    owner = read_owner(owner_path(tmp_path, "clickstream_events"))
    assert owner is not None
    assert (owner.delivery_stream, owner.consumer_group, owner.pid) == (
        "clickstream-events",
        "tidelake-sink-clickstream-events",
        os.getpid(),
    )
    # a restart (after a crash, kill -9 included: nothing is held while it runs) and a second copy
    # in the same consumer group (which shares the partitions) claim it again
    again = DatasetClaims(tmp_path, "clickstream-events", "tidelake-sink-clickstream-events")
    again.claim("clickstream_events")
    again.claim("clickstream_events")
    assert sorted(p.name for p in (tmp_path / "_sinks" / "_owners").iterdir()) == [
        "claims.lock",
        "clickstream_events.owner",
    ]


@pytest.mark.parametrize(
    ("name", "group"),
    [("my-stream", "tidelake-sink-my-stream"), ("clickstream-events", "another-group")],
)
def test_another_stream_or_group_is_refused_with_the_owner_and_what_to_do(
    name: str, group: str, tmp_path: Path
) -> None:
    DatasetClaims(tmp_path, "clickstream-events", "tidelake-sink-clickstream-events").claim(
        "clickstream_events"
    )
    with pytest.raises(ConfigError) as refused:
        DatasetClaims(tmp_path, name, group).claim("clickstream_events")
    record = owner_path(tmp_path, "clickstream_events")
    claimed_at = json.loads(record.read_text())["claimed_at"]
    assert str(refused.value) == (
        f"dataset 'clickstream_events' ({tmp_path / 'clickstream_events'}) belongs to delivery stream 'clickstream-events' "
        f"(consumer group 'tidelake-sink-clickstream-events'), since {claimed_at}, and delivery stream {name!r} "
        f"(consumer group {group!r}) would overwrite its files: a dataset has one delivery stream. Give this "
        "stream its own dataset (--dataset, or `dataset =` in its config) or its own lake (--lake DIR); or run "
        "'clickstream-events' itself (same name, same group) to continue it. To hand the dataset over, stop "
        f"'clickstream-events' and delete {record}."
    )
    DatasetClaims(tmp_path, name, group).claim("clickstream_events_2")  # its own dataset is fine


def test_dead_letters_are_claimed_apart_from_their_dataset(tmp_path: Path) -> None:
    DatasetClaims(tmp_path, "clickstream-events", "g1").claim("clickstream_events")
    DatasetClaims(tmp_path, "dead-letters", "g2", dead_letters=True).claim("clickstream_events")
    with pytest.raises(
        ConfigError,
        match=r"^the dead letters of dataset 'clickstream_events' \(.*/_errors/clickstream_events\) belong to delivery stream 'dead-letters'",
    ):
        DatasetClaims(tmp_path, "my-dead-letters", "g3", dead_letters=True).claim("clickstream_events")


def test_the_cli_refuses_a_second_stream_on_a_dataset_with_exit_code_2_before_reaching_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tidelake sink run` as a user runs it (the CLI's own entry point, in this process), on a
    lake whose dataset the shipped stream owns; no broker answers at the address given."""
    from tidelake.cli import main

    lake = tmp_path / "lake"
    DatasetClaims(lake, "clickstream-events", "tidelake-sink-clickstream-events").claim("clickstream_events")
    config = tmp_path / "mine.toml"
    config.write_text(
        'name = "mine"\ntopics = ["clickstream.events"]\ndataset = "clickstream_events"\nschema = "clickstream"\n'
    )
    monkeypatch.setenv("TIDELAKE_RUNTIME__STATE_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "tidelake",
            "sink",
            "run",
            "--config",
            str(config),
            "--lake",
            str(lake),
            "-b",
            "127.0.0.1:9",
            "--max-idle",
            "1",
        ],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert message.startswith(
        f"error: dataset 'clickstream_events' ({lake / 'clickstream_events'}) belongs to delivery stream "
        "'clickstream-events' (consumer group 'tidelake-sink-clickstream-events'), since "
    )
    assert "delivery stream 'mine' (consumer group 'tidelake-sink-mine') would overwrite its files" in message
    assert "its own lake (--lake DIR)" in message
    assert sorted(p.name for p in lake.iterdir()) == ["_sinks"]  # nothing written, not even a manifest folder
    assert sorted(p.name for p in (lake / "_sinks").iterdir()) == ["_owners"]
