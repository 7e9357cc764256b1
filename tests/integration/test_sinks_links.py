"""A delivery stream never writes through a symbolic link inside the lake (finding F5): a dataset,
partition or `_errors` folder that is a link to a folder outside makes the flush fail with
SinkWriteError naming the link; nothing is written outside, nothing is committed, and once the
link is replaced by a real folder every record is delivered. A lake reached through a linked root
works. The compactor refuses a linked partition folder the same way."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from kafka import KafkaConsumer, TopicPartition

from core.errors import SinkWriteError
from core.settings import Settings, load_settings
from sinks.compaction import compact_folders
from sinks.compactor import BackgroundCompactor, ClosedRule
from sinks.config import DeliveryStreamConfig, parse_config
from sinks.manifest import Manifest, ManifestStore
from sinks.stream import DeliveryStream
from sinks.writer import write_parquet
from tests.integration.sinks_support import (
    error_rows,
    event,
    lake_rows,
    produce,
    sink_command,
    unique_group,
    write_clickstream_config,
)

pytestmark = pytest.mark.integration
DATASET = "clickstream_events"
PARTITION = "dt=2019-01-22/hour=00"  # event(i) for i < 100 all fall in this hour


def _settings(bootstrap: str, lake: Path) -> Settings:
    return load_settings(kafka={"bootstrap_servers": bootstrap}, lake={"root": lake})


def _config(topic: str) -> DeliveryStreamConfig:
    data = {
        "name": "link-test",
        "topics": [topic],
        "dataset": DATASET,
        "schema": "clickstream",
        "group_id": unique_group(),
        "buffer": {"interval_s": 1, "records": 5000},
    }
    return parse_config(data, "test")


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close()


def _refusal(folder: Path, link: Path, target: Path, lake: Path) -> str:
    return (
        f"refusing to write {folder}: {link} is a symbolic link (to {target}) inside the lake {lake}, "
        "and sinks never write through links; nothing was committed and the records will be "
        "delivered again — replace the link with a real folder"
    )


def _everything_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _unlink_and_deliver(link: Path, config: DeliveryStreamConfig, settings: Settings) -> None:
    """Replace the link by a real folder and run again: every record arrives, the flush that
    failed is finished from its manifest."""
    link.unlink()
    summary = DeliveryStream(config, settings).run(max_idle_s=5)
    assert summary.recovered_flushes == 1
    assert summary.records_in == 100 == summary.rows_written


def test_a_dataset_folder_that_is_a_link_out_of_the_lake_is_never_written_through(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic, (event(i) for i in range(100)))
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    lake.mkdir()
    outside.mkdir()
    (lake / DATASET).symlink_to(outside)
    config, settings = _config(topic), _settings(kafka_bootstrap, lake)
    with pytest.raises(SinkWriteError) as refused:
        DeliveryStream(config, settings).run(max_idle_s=5)
    assert str(refused.value) == _refusal(lake / DATASET / PARTITION, lake / DATASET, outside, lake)
    assert _everything_under(outside) == []
    assert _committed(kafka_bootstrap, config.consumer_group, topic) is None
    _unlink_and_deliver(lake / DATASET, config, settings)
    assert lake_rows(lake, DATASET, "count(*), count(DISTINCT event_id)") == (100, 100)
    assert _committed(kafka_bootstrap, config.consumer_group, topic) == 100
    assert _everything_under(outside) == []


def test_a_partition_folder_that_is_a_link_out_of_the_lake_is_never_written_through(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic, (event(i) for i in range(100)))
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    (lake / DATASET).mkdir(parents=True)
    outside.mkdir()
    (lake / DATASET / "dt=2019-01-22").symlink_to(outside)
    config, settings = _config(topic), _settings(kafka_bootstrap, lake)
    with pytest.raises(SinkWriteError) as refused:
        DeliveryStream(config, settings).run(max_idle_s=5)
    link = lake / DATASET / "dt=2019-01-22"
    assert str(refused.value) == _refusal(lake / DATASET / PARTITION, link, outside, lake)
    assert _everything_under(outside) == []
    assert _committed(kafka_bootstrap, config.consumer_group, topic) is None
    _unlink_and_deliver(link, config, settings)
    assert lake_rows(lake, DATASET, "count(*), count(DISTINCT event_id)") == (100, 100)
    assert _everything_under(outside) == []


def test_an_errors_folder_that_is_a_link_takes_no_error_output_and_the_cli_says_why(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic, [*(event(i) for i in range(99)), b"nope"])
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    lake.mkdir()
    outside.mkdir()
    (lake / "_errors").symlink_to(outside)
    config = write_clickstream_config(
        tmp_path / "stream.toml", "link-cli", topic, "[buffer]\ninterval_s = 1\n"
    )
    done = subprocess.run(
        sink_command(config, lake, kafka_bootstrap, "--max-idle", "5"),
        env={**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "run")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    message = " ".join(done.stderr.split())  # the console wraps long lines
    folder = re.escape(f"{lake}/_errors/{DATASET}/format-conversion-failed/dt=") + r"\d{4}-\d\d-\d\d"
    expected = " ".join(_refusal(Path("FOLDER"), lake / "_errors", outside, lake).split())
    assert re.fullmatch(r"error: " + re.escape(expected).replace("FOLDER", folder), message), message
    assert _everything_under(outside) == []
    (lake / "_errors").unlink()
    again = subprocess.run(
        sink_command(config, lake, kafka_bootstrap, "--max-idle", "5"),
        env={**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "run")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert lake_rows(lake, DATASET) == (99,)
    assert len(error_rows(lake, DATASET)) == 1
    assert _everything_under(outside) == []


def test_a_lake_reached_through_a_linked_root_works(kafka_bootstrap: str, make_topic, tmp_path: Path) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic, (event(i) for i in range(100)))
    real = tmp_path / "disk" / "lake"
    real.mkdir(parents=True)
    lake = tmp_path / "lake"
    lake.symlink_to(real)
    config = _config(topic)
    summary = DeliveryStream(config, _settings(kafka_bootstrap, lake)).run(max_idle_s=5)
    assert (summary.records_in, summary.rows_written, summary.files) == (100, 100, 1)
    assert lake_rows(real, DATASET, "count(*), count(DISTINCT event_id)") == (100, 100)
    assert _everything_under(real / DATASET) == [
        "dt=2019-01-22",
        "dt=2019-01-22/hour=00",
        f"dt=2019-01-22/hour=00/{topic}+0+00000000000000000000.parquet",
    ]


def test_manifests_are_never_written_through_a_linked_state_folder(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    lake.mkdir()
    outside.mkdir()
    (lake / "_sinks").symlink_to(outside)
    with pytest.raises(SinkWriteError) as refused:
        ManifestStore(lake, "s").write(Manifest("t", 0, 0, 9, ["ds/f.parquet"]))
    assert str(refused.value) == _refusal(lake / "_sinks" / "s", lake / "_sinks", outside, lake)
    assert _everything_under(outside) == []


def test_the_writer_refuses_a_link_only_when_given_the_lake_root(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    lake.mkdir()
    outside.mkdir()
    (lake / "ds").symlink_to(outside)
    table = pa.table({"n": [1, 2, 3]})
    with pytest.raises(SinkWriteError) as refused:
        write_parquet(table, lake / "ds" / "a" / "f.parquet", root=lake)
    assert str(refused.value) == _refusal(lake / "ds" / "a", lake / "ds", outside, lake)
    with pytest.raises(SinkWriteError) as escaped:
        write_parquet(table, lake / ".." / "outside" / "f.parquet", root=lake)
    assert str(escaped.value) == (
        f"refusing to write {lake / '..' / 'outside'}: it is not inside the lake {lake}; nothing was committed"
    )
    assert _everything_under(outside) == []
    assert write_parquet(table, lake / "real" / "a" / "f.parquet", root=lake) > 0


def test_the_compactor_refuses_a_linked_dataset_or_partition_folder(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    lake.mkdir()
    for n in range(2):
        write_parquet(pa.table({"n": [n]}), outside / "dt=2019-01-22" / "hour=00" / f"t+0+{n:020d}.parquet")
    before = _everything_under(outside)
    (lake / "ds").symlink_to(outside)
    folder = lake / "ds" / "dt=2019-01-22" / "hour=00"
    with pytest.raises(SinkWriteError) as refused:
        compact_folders(lake, "ds", [folder])
    assert str(refused.value) == _refusal(folder, lake / "ds", outside, lake)
    compactor = BackgroundCompactor(lake, ["ds"], rule=ClosedRule(quiet_s=0))
    done = compactor.run_once()  # the round goes on: it is tried again next round
    assert (done.compacted, done.failed) == ([], [f"ds/dt=2019-01-22/hour=00: {refused.value}"])
    (lake / "ds").unlink()
    (lake / "ds").mkdir()
    (lake / "ds" / "dt=2019-01-22").symlink_to(outside / "dt=2019-01-22")
    with pytest.raises(SinkWriteError) as partition:
        compact_folders(lake, "ds", [folder])
    assert str(partition.value) == _refusal(
        folder, lake / "ds" / "dt=2019-01-22", outside / "dt=2019-01-22", lake
    )
    assert _everything_under(outside) == before
