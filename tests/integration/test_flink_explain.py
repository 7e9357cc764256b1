"""`tidelake stream export --to flink-sql` output parses and plans with Flink's own planner: the
script of every shipped app that compiles (TOML specs and KDA SQL programs) runs its CREATE
statements and EXPLAINs its INSERT, all in one mini-cluster JVM (the runner's explain mode). The
apps Flink SQL cannot express are refused at compile time (FlinkUnsupported) instead.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.errors import ConfigError
from stream_apps.catalog import shipped_specs, shipped_sql
from stream_apps.flink_runtime import explain_job, runner_command
from stream_apps.flink_sql import FlinkUnsupported, compile_flink_sql
from stream_apps.kda_sql.apps import sql_app_spec
from stream_apps.spec import AppSpec
from tidelake.flink_install import installed

pytestmark = pytest.mark.integration

#: Compiling needs no broker: the address is only written into the tables' options.
BOOTSTRAP = "kafka:9092"


def shipped_apps() -> dict[str, AppSpec]:
    """Every shipped app: TOML specs by name, KDA SQL programs as `<name>.sql`."""
    apps = dict(shipped_specs())
    apps.update({f"{name}.sql": sql_app_spec(path) for name, path in shipped_sql().items()})
    return apps


def test_every_shipped_app_that_compiles_plans_with_flinks_planner(tmp_path: Path) -> None:
    try:
        flink = installed()
    except ConfigError as exc:  # a missing runtime fails the test (make install fetches it), never skips
        pytest.fail(f"{exc}; run make install", pytrace=False)
    scripts: dict[str, tuple[str, ...]] = {}
    refused: dict[str, str] = {}
    for name, spec in shipped_apps().items():
        try:
            scripts[name] = compile_flink_sql(spec, bootstrap_servers=BOOTSTRAP).statements
        except FlinkUnsupported as exc:
            refused[name] = str(exc)
    job = tmp_path / "explain.json"
    job.write_text(json.dumps(explain_job(scripts, flink.connector_jar)))
    done = subprocess.run(runner_command(flink.python, job), capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = {e["app"]: f"{e['error']}\nin: {e['statement']}" for e in events if e["event"] == "failed"}
    assert failed == {}, "\n\n".join(f"{app}: {error}" for app, error in failed.items())
    explained = [e["app"] for e in events if e["event"] == "explained"]
    assert explained == list(scripts)  # every app that compiles, in order, and only those
    assert set(scripts) | set(refused) == set(shipped_apps())
    assert len(scripts) >= 1
    for event in events:
        assert "== Optimized Execution Plan ==" in event["plan"]
        assert "KafkaSource" in event["plan"] or "TableSourceScan" in event["plan"]
    assert done.returncode == 0, done.stderr[-2000:]
