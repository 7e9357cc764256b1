"""The Flink job runner: executed by path by the Flink venv's python (`tidelake flink fetch`), never
imported by tidelake. It can import only the standard library and PyFlink.

    <flink venv>/bin/python stream_apps/flink_job.py JOB.json     (or - for stdin)

JOB.json is what `stream_apps.flink_runtime.job_file` writes:

    {"scripts": [{"app": "page-views-1m", "statements": ["SET 'k' = 'v'", "CREATE TABLE ...",
                  ..., "INSERT INTO ..."]}],
     "settings": {"pipeline.jars": "file:///.../flink-sql-connector-kafka-5.0.0-2.2.jar", ...},
     "explain": false}

Run mode: the script's SET lines become the job's configuration, then `settings` (the
runtime's: connector jar, parallelism, checkpoint folder, restore path, remote target) override
them, since a TableEnvironment takes its cluster and checkpoint configuration when it is created.
The CREATE statements run, the INSERT is submitted, and one JSON line per event goes to stdout:

    {"event": "submitted", "app": ..., "job_id": "..."}
    {"event": "state", "app": ..., "job_id": "...", "state": "RUNNING"}      (each change)
    {"event": "cancelled", ...} | {"event": "failed", ..., "error": "..."}

Several scripts run as several jobs in one JVM (`run`'s docstring; the tests use it to start one
JVM for many apps). SIGTERM or SIGINT cancels the jobs and exits 0 (Flink keeps the retained checkpoints: a restart
resumes from the newest). On a remote cluster (`execution.target` = remote) it exits once the job
is submitted: the cluster runs it.

Explain mode: every script's CREATE statements run in one TableEnvironment (one JVM), each script in
a database of its own (two scripts may name the same tables), and the INSERT goes through Flink's
planner (`EXPLAIN`); one line per script, {"event": "explained", "app": ...,
"plan": ...} or {"event": "failed", "app": ..., "statement": ..., "error": ...}. Nothing runs.

Exit codes: 0 done (cancelled, explained, submitted), 1 the job failed or a statement was refused.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import time
from typing import Any

#: `SET 'key' = 'value'` as the Flink SQL client writes it (quotes doubled inside a literal).
SET_LINE = re.compile(r"^\s*SET\s+'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)'\s*$", re.IGNORECASE | re.DOTALL)
#: Job states after which nothing more happens (org.apache.flink.api.common.JobStatus.isGloballyTerminalState).
TERMINAL_STATES = ("FINISHED", "CANCELED", "FAILED")
POLL_S = 0.5


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def split_script(statements: list[str]) -> tuple[dict[str, str], list[str]]:
    """(the SET lines as settings, the other statements in order)."""
    settings: dict[str, str] = {}
    rest = []
    for statement in statements:
        match = SET_LINE.match(statement)
        if match:
            settings[match.group(1).replace("''", "'")] = match.group(2).replace("''", "'")
        else:
            rest.append(statement)
    return settings, rest


def table_environment(settings: dict[str, str]) -> Any:
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    config = Configuration()
    for key, value in settings.items():
        config.set_string(key, value)
    return TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build()
    )


def error_text(exc: BaseException) -> str:
    """The Java exception's message without the stack trace py4j appends."""
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("at ")]
    return "\n".join(lines[:12])


def explain(scripts: list[dict[str, Any]], settings: dict[str, str]) -> int:
    t_env = table_environment(settings)
    failures = 0
    for number, script in enumerate(scripts):
        app = script["app"]
        _, statements = split_script(script["statements"])
        current = ""
        try:
            t_env.execute_sql(f"CREATE DATABASE script_{number}")
            t_env.use_database(f"script_{number}")
            for current in statements[:-1]:
                t_env.execute_sql(current)
            current = statements[-1]
            plan = t_env.explain_sql(current)
            emit("explained", app=app, plan=plan)
        except Exception as exc:  # a Java error through py4j: report it for this app, go on
            failures += 1
            emit("failed", app=app, statement=current, error=error_text(exc))
    return 1 if failures else 0


def run(scripts: list[dict[str, Any]], settings: dict[str, str]) -> int:
    """Submit each script's INSERT as a job of its own and follow them until they end or a signal
    cancels them. Several scripts share one JVM and one configuration (the first script's SET
    lines, then `settings`; each script's own SET lines go into its table config, e.g. its
    pipeline.name) and each gets a database of its own."""
    script_settings, _ = split_script(scripts[0]["statements"])
    t_env = table_environment({**script_settings, **settings})
    clients: dict[str, Any] = {}
    for number, script in enumerate(scripts):
        app = script["app"]
        own_settings, statements = split_script(script["statements"])
        current = ""
        try:
            if len(scripts) > 1:
                t_env.execute_sql(f"CREATE DATABASE script_{number}")
                t_env.use_database(f"script_{number}")
                for key, value in own_settings.items():
                    t_env.get_config().set(key, value)
            for current in statements[:-1]:
                t_env.execute_sql(current)
            current = statements[-1]
            result = t_env.execute_sql(current)
        except Exception as exc:
            emit("failed", app=app, statement=current, error=error_text(exc))
            for client in clients.values():
                client.cancel().result()
            return 1
        clients[app] = result.get_job_client()
        emit("submitted", app=app, job_id=str(clients[app].get_job_id()))
    if settings.get("execution.target") == "remote":
        return 0
    return follow(clients)


def follow(clients: dict[str, Any]) -> int:
    """Report each job's state changes until every job has ended; SIGTERM/SIGINT cancels them."""
    stopping: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    states = dict.fromkeys(clients, "")
    failed = False
    while True:
        if stopping:
            for app, client in clients.items():
                job_id = str(client.get_job_id())
                if states[app] in TERMINAL_STATES:
                    continue
                try:
                    client.cancel().result()
                except Exception as exc:  # it ended meanwhile: report how
                    failed = True
                    emit("failed", app=app, job_id=job_id, error=error_text(exc))
                    continue
                emit("cancelled", app=app, job_id=job_id)
            return 1 if failed else 0
        for app, client in clients.items():
            if states[app] in TERMINAL_STATES:
                continue
            job_id = str(client.get_job_id())
            try:
                status = client.get_job_status().result()  # a pyflink JobStatus enum
                now = str(getattr(status, "name", status))
            except Exception as exc:
                emit("failed", app=app, job_id=job_id, error=error_text(exc))
                now = "FAILED"
            if now != states[app]:
                states[app] = now
                emit("state", app=app, job_id=job_id, state=now)
                if now == "FAILED":
                    failed = True
                    with contextlib.suppress(Exception):
                        client.get_job_execution_result().result()
                elif now == "CANCELED":
                    failed = True
        if all(state in TERMINAL_STATES for state in states.values()):
            return 1 if failed else 0
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: flink_job.py JOB.json|-", file=sys.stderr)
        return 2
    if argv[1] == "-":
        job = json.load(sys.stdin)
    else:
        with open(argv[1], encoding="utf-8") as file:
            job = json.load(file)
    settings = {str(k): str(v) for k, v in job.get("settings", {}).items()}
    if job.get("explain"):
        return explain(job["scripts"], settings)
    return run(job["scripts"], settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
