"""docker-compose.yml's `flink` profile stays honest (no Docker engine here): a JobManager and a
TaskManager of the Flink version PyFlink runs, and one one-shot submitter per shipped app that Flink
SQL can express, each a real `tidelake stream run NAME --runtime flink --flink-rest` (the commands
and variables of every tidelake service are checked by tests/unit/test_compose.py)."""

from __future__ import annotations

from pathlib import Path

from stream_apps.catalog import shipped_specs
from stream_apps.flink_sql import FlinkUnsupported, compile_flink_sql
from tests.unit.test_compose import compose
from tidelake.flink_install import FLINK_VERSION

REPO = Path(__file__).resolve().parents[2]
REST = "http://jobmanager:8081"


def profiled() -> dict[str, dict]:
    return {name: spec for name, spec in compose()["services"].items() if spec.get("profiles")}


def expressible_apps() -> set[str]:
    apps = set()
    for name, spec in shipped_specs().items():
        try:
            compile_flink_sql(spec, bootstrap_servers="kafka:19092")
        except FlinkUnsupported:
            continue
        apps.add(name)
    return apps


def test_every_profiled_service_is_in_the_flink_profile_and_plain_up_starts_none() -> None:
    assert {tuple(spec["profiles"]) for spec in profiled().values()} == {("flink",)}
    assert {"jobmanager", "taskmanager"} <= set(profiled())


def test_jobmanager_and_taskmanager_run_the_flink_version_of_pyflink() -> None:
    services = profiled()
    for name in ("jobmanager", "taskmanager"):
        assert services[name]["image"] == f"flink:{FLINK_VERSION}-java17"
        assert services[name]["command"] == name
        assert "jobmanager.rpc.address: jobmanager" in services[name]["environment"]["FLINK_PROPERTIES"]
    assert services["jobmanager"]["ports"] == ["8081:8081"]
    assert services["taskmanager"]["depends_on"] == {"jobmanager": {"condition": "service_healthy"}}


def test_one_submitter_per_shipped_app_that_flink_sql_can_express() -> None:
    submitters = {name: spec for name, spec in profiled().items() if name.startswith("flink-submit-")}
    apps = {spec["command"][2] for spec in submitters.values()}
    assert apps == expressible_apps()
    for name, spec in submitters.items():
        app = name.removeprefix("flink-submit-")
        assert spec["command"] == ["stream", "run", app, "--runtime", "flink", "--flink-rest", REST]
        assert spec["image"] == "tidelake:flink"
        assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile.flink"}
        assert spec["restart"] == "no"  # one-shot: it exits once the cluster has the job
        assert spec["depends_on"]["jobmanager"] == {"condition": "service_healthy"}
        assert spec["depends_on"]["topics"] == {"condition": "service_completed_successfully"}


def test_the_flink_image_installs_the_flink_runtime() -> None:
    lines = (REPO / "Dockerfile.flink").read_text().splitlines()
    assert "RUN tidelake flink fetch && rm -rf /root/.m2" in lines
    assert any("openjdk-17-jre-headless" in line for line in lines)  # PyFlink drives a JVM
    assert 'ENTRYPOINT ["tidelake"]' in lines
