"""`tidelake status` lists the Kinesis streams CreateStream made: name, mode, shards, records and
creation time, from the registry `tidelake serve` keeps and the topics status already reads from a
real broker. Topics the API only described, and deleted streams, are not listed."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import Settings, load_settings
from producers.kinesis_api import (
    CreateStreamInput,
    DeleteStreamInput,
    KinesisService,
    PutRecordsInput,
    StreamRef,
)
from producers.kinesis_registry import REGISTRY_DIR
from tidelake.status import collect_status, kinesis_streams

CLI = [sys.executable, "-m", "tidelake.cli"]


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap},
        runtime={"state_dir": tmp_path / "run"},
        lake={"root": tmp_path / "lake"},
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[KinesisService]:
    """The service `tidelake serve` builds from these settings (its registry under the state folder)."""
    made = KinesisService.from_settings(settings)
    yield made
    made.close()


def _put(service: KinesisService, stream: str, hash_keys: list[str]) -> None:
    records = [
        {"Data": base64.b64encode(f"r{i}".encode()).decode(), "PartitionKey": "k", "ExplicitHashKey": key}
        for i, key in enumerate(hash_keys)
    ]
    answer = service.put_records(PutRecordsInput.model_validate({"StreamName": stream, "Records": records}))
    assert answer["FailedRecordCount"] == 0


def _created(service: KinesisService, stream: str) -> float:
    summary = service.describe_stream_summary(StreamRef(StreamName=stream))["StreamDescriptionSummary"]
    return summary["StreamCreationTimestamp"]


@pytest.fixture
def made_streams(service: KinesisService, make_topic: Callable[..., str]) -> Iterator[list[dict]]:
    """Two streams made by CreateStream (3 records on 2 shards; 4 empty on-demand shards), a topic
    the API described, a stream made and deleted; the entries status should list."""
    stem = f"test.status.{uuid.uuid4().hex[:8]}"
    provisioned, on_demand, deleted = f"{stem}.a", f"{stem}.b", f"{stem}.c"
    service.create_stream(CreateStreamInput(StreamName=provisioned, ShardCount=2))
    service.create_stream(
        CreateStreamInput.model_validate(
            {"StreamName": on_demand, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}
        )
    )
    service.create_stream(CreateStreamInput(StreamName=deleted, ShardCount=1))
    service.delete_stream(DeleteStreamInput(StreamName=deleted))
    _put(service, provisioned, ["0", "1", str(2**127)])  # two records on shard 0, one on shard 1
    described = make_topic(3)
    assert service.describe_stream_summary(StreamRef(StreamName=described))  # the API has seen it
    yield [
        {
            "name": provisioned,
            "mode": "PROVISIONED",
            "created_at": _created(service, provisioned),
            "shards": 2,
            "records": 3,
        },
        {
            "name": on_demand,
            "mode": "ON_DEMAND",
            "created_at": _created(service, on_demand),
            "shards": 4,
            "records": 0,
        },
    ]
    for name in (provisioned, on_demand):
        service.delete_stream(DeleteStreamInput(StreamName=name))


def test_collect_status_lists_the_streams_create_stream_made(settings: Settings, made_streams) -> None:
    status = collect_status(settings, with_groups=False)
    assert status.broker_up
    assert status.to_dict()["kinesis_streams"] == made_streams


def test_the_status_command_lists_them(settings: Settings, made_streams, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TIDELAKE_RUNTIME__STATE_DIR": str(settings.runtime.state_dir),
        "TIDELAKE_LAKE__ROOT": str(settings.lake.root),
        "COLUMNS": "250",  # rich's tables wrap at 80 columns without a terminal
    }
    as_json = subprocess.run([*CLI, "status", "--json"], capture_output=True, text=True, env=env, check=False)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["kinesis_streams"] == made_streams

    text = subprocess.run([*CLI, "status"], capture_output=True, text=True, env=env, check=False)
    assert text.returncode == 0, text.stderr
    assert "Kinesis streams (made by CreateStream)" in text.stdout
    rows = {}
    for line in text.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 5 and cells[0] in {s["name"] for s in made_streams}:
            rows[cells[0]] = cells[1:]
    assert rows == {
        s["name"]: [
            s["mode"],
            str(s["shards"]),
            str(s["records"]),
            dt.datetime.fromtimestamp(s["created_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        ]
        for s in made_streams
    }


def test_without_kafka_the_streams_are_listed_without_shards_and_records(
    settings: Settings, made_streams
) -> None:
    listed = kinesis_streams(settings.runtime.state_dir, None)
    assert [(k.name, k.mode, k.created_at, k.shards, k.records) for k in listed] == [
        (s["name"], s["mode"], s["created_at"], None, None) for s in made_streams
    ]


def test_a_state_folder_serve_never_used_lists_none_and_stays_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "run"
    assert kinesis_streams(state, []) == []
    assert not (state / REGISTRY_DIR).exists()
