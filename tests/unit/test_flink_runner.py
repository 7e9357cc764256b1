"""The Flink runtime's runner, without a JVM: its command line, the settings it puts over the script,
the checkpoint it restores from, how it reads a script's SET lines, and the install check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigError
from stream_apps import flink_job
from stream_apps.flink_runtime import (
    JOB_SCRIPT,
    FlinkOptions,
    job_file,
    job_settings,
    latest_checkpoint,
    pipeline_jars,
    rest_address,
    runner_command,
    runner_env,
)
from tidelake import flink_install
from tidelake.flink_install import MARKER, FlinkInstall, installed, venv_stamp

JAR = Path("/cache/flink-2.2.0/lib/flink-sql-connector-kafka-5.0.0-2.2.jar")


def _checkpoint(root: Path, job: str, number: int, mtime_ns: int, complete: bool = True) -> Path:
    folder = root / job / f"chk-{number}"
    folder.mkdir(parents=True)
    if complete:
        metadata = folder / "_metadata"
        metadata.write_bytes(b"x")
        os.utime(metadata, ns=(mtime_ns, mtime_ns))
    return folder


def test_runner_command_runs_the_job_script_by_path_with_the_flink_venvs_python(tmp_path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    assert runner_command(python, tmp_path / "job.json") == [
        str(python),
        str(JOB_SCRIPT),
        str(tmp_path / "job.json"),
    ]
    assert JOB_SCRIPT.name == "flink_job.py"
    assert JOB_SCRIPT.is_file()


def test_local_settings_checkpoint_under_the_state_folder_and_keep_them_on_cancel(tmp_path) -> None:
    options = FlinkOptions(Path("python"), JAR)
    settings = job_settings(options, tmp_path, "page-views-1m", partitions=4)
    assert settings == {
        "pipeline.jars": f"file://{JAR}",
        "parallelism.default": "4",
        "execution.checkpointing.dir": f"file://{tmp_path}/page-views-1m/flink-checkpoints",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
    }


def test_a_given_parallelism_wins_over_the_partition_count(tmp_path) -> None:
    settings = job_settings(FlinkOptions(Path("python"), JAR, parallelism=1), tmp_path, "a", partitions=4)
    assert settings["parallelism.default"] == "1"


def test_restore_path_is_the_newest_complete_checkpoint_of_any_job(tmp_path) -> None:
    root = tmp_path / "app" / "flink-checkpoints"
    _checkpoint(root, "job-a", 7, mtime_ns=1_000)
    newest = _checkpoint(root, "job-b", 3, mtime_ns=2_000)  # a later job: its numbers restart lower
    _checkpoint(root, "job-b", 4, mtime_ns=3_000, complete=False)  # cut short by a crash: no _metadata
    assert latest_checkpoint(root) == newest
    settings = job_settings(FlinkOptions(Path("python"), JAR), tmp_path, "app", partitions=2)
    assert settings["execution.state-recovery.path"] == newest.resolve().as_uri()


def test_same_metadata_time_picks_the_higher_checkpoint_number(tmp_path) -> None:
    root = tmp_path / "flink-checkpoints"
    _checkpoint(root, "job", 9, mtime_ns=5_000)
    ten = _checkpoint(root, "job", 10, mtime_ns=5_000)
    assert latest_checkpoint(root) == ten


def test_no_checkpoint_means_no_restore_path(tmp_path) -> None:
    assert latest_checkpoint(tmp_path / "nothing") is None
    settings = job_settings(FlinkOptions(Path("python"), JAR), tmp_path, "app", partitions=1)
    assert "execution.state-recovery.path" not in settings


def test_remote_settings_target_the_rest_endpoint_and_leave_checkpoints_to_the_cluster(tmp_path) -> None:
    options = FlinkOptions(Path("python"), JAR, parallelism=2, rest_url="http://jobmanager:8081")
    assert job_settings(options, tmp_path, "app", partitions=4) == {
        "pipeline.jars": f"file://{JAR}",
        "parallelism.default": "2",
        "execution.target": "remote",
        "rest.address": "jobmanager",
        "rest.port": "8081",
    }


@pytest.mark.parametrize(("url", "address"), [("http://jm:8081", ("jm", 8081)), ("http://jm", ("jm", 8081)),
                                              ("https://flink.example:443/", ("flink.example", 443))])  # fmt: skip
def test_rest_address(url, address) -> None:
    assert rest_address(url) == address


@pytest.mark.parametrize("url", ["jobmanager:8081", "ftp://jm:8081", "http://"])
def test_a_rest_url_without_http_and_host_is_refused(url) -> None:
    with pytest.raises(ConfigError, match="expected http://HOST:PORT"):
        rest_address(url)


def test_job_file_carries_statements_settings_and_mode() -> None:
    assert job_file(("SET 'a' = 'b'", "INSERT INTO t SELECT 1"), "app", {"k": "v"}) == {
        "scripts": [{"app": "app", "statements": ["SET 'a' = 'b'", "INSERT INTO t SELECT 1"]}],
        "settings": {"k": "v"},
        "explain": False,
    }


def test_the_runner_reads_set_lines_as_settings_and_keeps_the_rest_in_order() -> None:
    settings, rest = flink_job.split_script(
        [
            "SET 'execution.checkpointing.interval' = '1000 ms'",
            "set 'pipeline.name'='tidelake-it''s'",
            "CREATE TABLE s (a STRING) WITH ('connector' = 'kafka')",
            "INSERT INTO k SELECT a FROM s",
        ]
    )
    assert settings == {"execution.checkpointing.interval": "1000 ms", "pipeline.name": "tidelake-it's"}
    assert rest == ["CREATE TABLE s (a STRING) WITH ('connector' = 'kafka')", "INSERT INTO k SELECT a FROM s"]


def test_the_runner_drops_java_stack_frames_from_errors() -> None:
    error = RuntimeError(
        "org.apache.flink.table.api.ValidationException: Object 'x' not found\n\tat a.B.c(B.java:1)\n"
    )
    assert (
        flink_job.error_text(error) == "org.apache.flink.table.api.ValidationException: Object 'x' not found"
    )


def test_a_missing_flink_install_names_the_fix(tmp_path) -> None:
    install = FlinkInstall(tmp_path / "venv", tmp_path / "lib" / "connector.jar")
    with pytest.raises(ConfigError, match=r"run `tidelake flink fetch` \(or make install\)") as caught:
        installed(install)
    assert "PyFlink 2.2.0" in str(caught.value) and "the Kafka connector" in str(caught.value)
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / MARKER).write_text(venv_stamp() + "\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "connector.jar").write_bytes(b"jar")
    with pytest.raises(ConfigError, match=r"the Kafka connector \(.*/lib/zstd-jni-1\.5\.6-10\.jar\)"):
        installed(install)  # the connector alone cannot read zstd batches
    (tmp_path / "lib" / "zstd-jni-1.5.6-10.jar").write_bytes(b"jar")
    assert installed(install) == install


def test_the_flink_venv_is_locked_to_the_pinned_pyflink_and_a_venv_from_another_lock_is_redone(
    tmp_path,
) -> None:
    resources = Path(flink_install.__file__).parent / "resources"
    wanted = [
        line
        for line in (resources / "flink-requirements.in").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert wanted == [f"apache-flink=={flink_install.FLINK_VERSION}"]
    locked = [
        line for line in (resources / "flink-requirements.lock").read_text().splitlines() if "==" in line
    ]
    assert f"apache-flink=={flink_install.FLINK_VERSION}" in locked
    assert f"apache-flink-libraries=={flink_install.FLINK_VERSION}" in locked
    install = FlinkInstall(tmp_path / "venv", tmp_path / "connector.jar")
    (tmp_path / "venv").mkdir()
    (tmp_path / "connector.jar").write_bytes(b"jar")
    (tmp_path / "venv" / MARKER).write_text("apache-flink==2.2.0\n")  # made before the lock: redone
    with pytest.raises(ConfigError, match=r"PyFlink 2\.2\.0 \(venv "):
        installed(install)


def test_pipeline_jars_are_the_connector_then_the_jars_beside_it(tmp_path) -> None:
    """zstd-jni rides with the connector: without it a zstd topic (tidelake replay's default) fails
    every fetch with NoClassDefFoundError com/github/luben/zstd/BufferPool."""
    connector = tmp_path / "flink-sql-connector-kafka-5.0.0-2.2.jar"
    zstd = tmp_path / "zstd-jni-1.5.6-10.jar"
    for jar in (zstd, connector):
        jar.write_bytes(b"jar")
    (tmp_path / "notes.txt").write_text("not a jar")
    assert pipeline_jars(connector) == f"file://{connector};file://{zstd}"
    assert job_settings(FlinkOptions(Path("python"), connector), tmp_path, "app", 4)["pipeline.jars"] == (
        f"file://{connector};file://{zstd}"
    )
    assert FlinkInstall(tmp_path / "venv", connector).jars == (connector, zstd)


def test_the_jvm_logs_into_the_apps_state_folder_not_the_shared_venv(tmp_path) -> None:
    env = runner_env(tmp_path / "page-views-1m")
    assert env["FLINK_LOG_DIR"] == str(tmp_path / "page-views-1m")
    assert env["PATH"] == os.environ["PATH"]
