"""The AWS services `tidelake serve` answers beside Athena, built from the settings and wired here.

    with aws_services(settings) as services:
        app = aws_endpoint(query_app, services.tables, token, hosts)

Each role owns its actions; this module only builds them and names their target prefixes:

| service | `X-Amz-Target` prefix | role | state under `runtime.state_dir` |
|---|---|---|---|
| Kinesis Data Streams | `Kinesis_20131202` | `producers.kinesis_api` | `kinesis/` (stream registry) |
| Firehose | `Firehose_20150804` | `sinks.firehose_api` | `firehose/` (stream definitions) |
| Glue Data Catalog | `AWSGlue` | `queries.glue_api` | `glue/` (created databases and tables) |

Athena (`AmazonAthena`) is answered by the query app itself (`queries.api`), and S3, a REST API,
by `queries.s3_api` in front of the endpoint. Firehose's delivery streams run inside serve
from `start()` until `close()`, which lets each flush and commit what it holds.

For tests (`tidelake.testing`, and other languages' tests through HTTP) serve also answers
`POST /_tidelake/reset` (`AwsServices.reset`: empty the stack) and `POST /_tidelake/flush`
(`sinks.firehose_flush`: a delivery stream's buffer, durable now); `admin_routes` builds both.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from core.aws_json import ActionTable, AwsError, AwsModel, parse_request
from core.settings import Settings
from producers.kinesis_api import TARGET_PREFIX as KINESIS_PREFIX
from producers.kinesis_api import KinesisService, kinesis_actions
from producers.kinesis_quotas import ShardQuotas
from queries.athena_ddl import AthenaDdl
from queries.engine import Engine
from queries.glue_api import TARGET_PREFIX as GLUE_PREFIX
from queries.glue_api import GlueService, glue_actions
from queries.service import QueryService
from sinks.firehose_api import TARGET_PREFIX as FIREHOSE_PREFIX
from sinks.firehose_api import FirehoseService, firehose_actions
from sinks.firehose_flush import flush_delivery_stream

#: How long a reset waits for the delivery streams it deleted to stop (each flushes first).
RESET_TIMEOUT_S = 60.0
#: Flushes that may wait at once: each holds one of the endpoint's worker threads while it waits, and
#: more would starve every other action (a reviewer stalled ListStreams for 21 s with 42 of them).
MAX_CONCURRENT_FLUSHES = 2


class ResetInput(AwsModel):
    #: Kinesis streams (Kafka topics) to keep: those of others on a shared broker.
    KeepStreams: list[str] = Field(default_factory=list)


class FlushInput(AwsModel):
    DeliveryStreamName: str = Field(min_length=1, max_length=64)
    TimeoutSeconds: float = Field(default=30.0, gt=0, le=600)


@dataclass
class AwsServices:
    """The services of one `tidelake serve` and their action tables by target prefix."""

    kinesis: KinesisService
    firehose: FirehoseService
    glue: GlueService
    quotas: ShardQuotas | None = None
    tables: dict[str, ActionTable] = field(default_factory=dict)
    _resetting: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _flushes: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(MAX_CONCURRENT_FLUSHES), repr=False
    )

    def describe(self) -> list[str]:
        """One line per service for serve's banner."""
        quotas = self.quotas.describe() if self.quotas else "off (--shard-quotas enforces AWS's)"
        return [
            f"Kinesis Data Streams ({KINESIS_PREFIX}): shard quotas {quotas}",
            f"Firehose ({FIREHOSE_PREFIX}): delivery streams made through the API run inside serve",
            f"Glue Data Catalog ({GLUE_PREFIX}): database default is the lake",
        ]

    def call(self, prefix: str, action: str, request: dict[str, Any]) -> dict[str, Any]:
        """Run one action as the endpoint would (`prefix` `X-Amz-Target` prefix, `request` its body)."""
        return self.tables[prefix][action](json.dumps(request).encode())

    def reset(self, query: QueryService, keep_streams: list[str] | None = None) -> dict[str, Any]:
        """Empty the stack for the next test, through each service's own list and delete actions:
        Firehose delivery streams (waiting until their sinks stopped), Kinesis streams (every
        non-internal Kafka topic but `keep_streams`), Glue tables and databases made through the
        API (the lake's own tables go with its datasets), every entry of the lake (a symbolic link
        is unlinked, never followed), and Athena's running queries, named queries, prepared
        statements, workgroups other than primary, and the history and results of its ended query
        executions. Answers what it removed, by kind:
        {"DeliveryStreams": [...], "KinesisStreams": [...], "GlueTables": ["db.table"],
        "GlueDatabases": [...], "LakeEntries": [...], "AthenaQueriesStopped": 0,
        "QueryExecutions": 0, "NamedQueries": 0, "PreparedStatements": 0, "WorkGroups": [...]}.
        An execution still running after its stop stays listed. Raises AwsError when a stream will
        not stop."""
        with self._resetting:  # one reset at a time: two would delete the same entries under each other
            removed: dict[str, Any] = {"DeliveryStreams": self._reset_firehose()}
            removed["KinesisStreams"] = self._reset_kinesis(set(keep_streams or []))
            removed.update(self._reset_glue())
            removed["LakeEntries"] = _empty_folder(self.firehose.settings.lake.root)
            removed.update(_reset_athena(query))
            return removed

    def _reset_firehose(self) -> list[str]:
        names = _all_pages(
            lambda start: self.call(
                FIREHOSE_PREFIX,
                "ListDeliveryStreams",
                {"Limit": 10000, **({"ExclusiveStartDeliveryStreamName": start} if start else {})},
            ),
            "DeliveryStreamNames",
            "HasMoreDeliveryStreams",
        )
        for name in names:
            with contextlib.suppress(AwsError):  # a delete under way already, or one CREATING
                self.call(FIREHOSE_PREFIX, "DeleteDeliveryStream", {"DeliveryStreamName": name})
        deadline, pause = time.monotonic() + RESET_TIMEOUT_S, threading.Event()
        while (
            left := [n for n in names if self.firehose.status(n) is not None]
        ) and time.monotonic() < deadline:
            for name in left:  # one still CREATING could not be deleted above
                if self.firehose.status(name) == "ACTIVE":
                    with contextlib.suppress(AwsError):
                        self.call(FIREHOSE_PREFIX, "DeleteDeliveryStream", {"DeliveryStreamName": name})
            pause.wait(0.05)
        if left:
            msg = f"reset: the Firehose streams {left} did not stop within {RESET_TIMEOUT_S:g} s"
            raise AwsError("ServiceUnavailableException", msg, 503)
        return names

    def _reset_kinesis(self, keep: set[str]) -> list[str]:
        names = self._stream_names()
        gone = []
        for name in names:
            if name in keep:
                continue
            with contextlib.suppress(AwsError):  # deleted by someone else meanwhile
                self.call(
                    KINESIS_PREFIX, "DeleteStream", {"StreamName": name, "EnforceConsumerDeletion": True}
                )
                gone.append(name)
        # Kafka deletes a topic in the background: a test that makes a stream of the same name right
        # after the reset must not find the old one still there
        deadline, pause = time.monotonic() + RESET_TIMEOUT_S, threading.Event()
        while left := sorted(set(gone) & set(self._stream_names())):
            if time.monotonic() > deadline:
                msg = f"reset: Kafka still lists the deleted streams {left} after {RESET_TIMEOUT_S:g} s"
                raise AwsError("ServiceUnavailableException", msg, 503)
            pause.wait(0.05)
        return gone

    def _stream_names(self) -> list[str]:
        return _all_pages(
            lambda start: self.call(
                KINESIS_PREFIX,
                "ListStreams",
                {"Limit": 100, **({"ExclusiveStartStreamName": start} if start else {})},
            ),
            "StreamNames",
            "HasMoreStreams",
        )

    def _reset_glue(self) -> dict[str, list[str]]:
        tables, databases = [], []
        for database in self.call(GLUE_PREFIX, "GetDatabases", {})["DatabaseList"]:
            db = database["Name"]
            for table in self.glue.store.tables(db):  # made through the API (the lake's are not stored)
                with contextlib.suppress(AwsError):
                    self.call(GLUE_PREFIX, "DeleteTable", {"DatabaseName": db, "Name": table["Name"]})
                    tables.append(f"{db}.{table['Name']}")
            if any(d["Name"] == db for d in self.glue.store.databases()):
                with contextlib.suppress(AwsError):
                    self.call(GLUE_PREFIX, "DeleteDatabase", {"Name": db})
                    databases.append(db)
        return {"GlueTables": tables, "GlueDatabases": databases}

    def admin_routes(self, query: QueryService, *, enabled: bool = True) -> ActionTable:
        """`tidelake serve`'s test routes by name (`POST /_tidelake/<name>`, JSON in and out). Off
        unless serve runs with `--test-routes` (the pytest plugin does): reset deletes every stream
        and the whole lake, which no demo or shared broker should allow by default. Off, each route
        answers 404 saying how to turn it on."""

        def reset(body: bytes) -> dict[str, Any]:
            request = parse_request(ResetInput, body or b"{}")
            return self.reset(query, request.KeepStreams)

        def flush(body: bytes) -> dict[str, Any]:
            request = parse_request(FlushInput, body)
            if not self._flushes.acquire(blocking=False):
                msg = f"{MAX_CONCURRENT_FLUSHES} flushes are already waiting; try again when one has answered"
                raise AwsError("ServiceUnavailableException", msg, 503)
            try:
                return flush_delivery_stream(
                    self.firehose, request.DeliveryStreamName, request.TimeoutSeconds
                )
            finally:
                self._flushes.release()

        if not enabled:
            return {name: _test_route_off(name) for name in ("reset", "flush")}
        return {"reset": reset, "flush": flush}


def _test_route_off(name: str) -> Any:
    def off(body: bytes) -> dict[str, Any]:
        msg = (
            f"POST /_tidelake/{name} is off: it empties the stack, so serve answers it only when started "
            "with --test-routes (the pytest plugin's stack is)"
        )
        raise AwsError("ResourceNotFoundException", msg, 404)

    return off


def _all_pages(page: Any, names_key: str, more_key: str) -> list[str]:
    names: list[str] = []
    while True:
        answer = page(names[-1] if names else None)
        names.extend(answer[names_key])
        if not answer.get(more_key) or not answer[names_key]:
            return names


def _empty_folder(root: Path) -> list[str]:
    """Remove every entry of the folder `root` (the lake) and answer their names. A symbolic link
    is unlinked, never followed; `shutil.rmtree` does not follow links inside folders either (it
    refuses a link given to it, and removes links it meets without entering them)."""
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry, onerror=_gone_already)
        removed.append(entry.name)
    return removed


def _gone_already(function: Any, path: str, excinfo: Any) -> None:
    """rmtree's error handler (`onerror`, Python 3.11): an entry a sink or a query removed meanwhile
    is not an error; anything else is raised."""
    if not isinstance(excinfo[1], FileNotFoundError):
        raise excinfo[1]


def _reset_athena(query: QueryService) -> dict[str, Any]:
    stopped = 0
    for execution in query.executions():
        if execution.state in ("QUEUED", "RUNNING"):
            with contextlib.suppress(Exception):  # finished meanwhile
                query.stop(execution.id)
                stopped += 1
    saved = list(query.saved)
    for named_query_id in saved:
        with contextlib.suppress(Exception):
            query.delete_saved(named_query_id)
    prepared = list(query.prepared)
    for workgroup, name in prepared:
        with contextlib.suppress(Exception):
            query.delete_prepared(name, workgroup)
    forgotten = query.forget_executions()  # after the stops: a stopped query has ended
    workgroups = [name for name in query.workgroups if name != "primary"]
    for name in workgroups:
        with contextlib.suppress(Exception):
            query.delete_workgroup(name)
    return {
        "AthenaQueriesStopped": stopped,
        "QueryExecutions": forgotten,
        "NamedQueries": len(saved),
        "PreparedStatements": len(prepared),
        "WorkGroups": workgroups,
    }


def connect_athena(glue: GlueService, engine: Engine, service: QueryService) -> None:
    """Athena reads and writes Glue's catalog: the engine makes Glue's own tables queryable by name
    (`Engine.attach_glue`) and StartQueryExecution runs DDL against Glue (`queries.athena_ddl`),
    and CREATE TABLE AS SELECT on this engine into the results folder (awswrangler's ctas_approach)."""
    engine.attach_glue(glue.stored_sources)
    service.ddl = AthenaDdl(glue, engine=engine, results=service.results.folder).run


@contextlib.contextmanager
def aws_services(settings: Settings, *, shard_quotas: bool = False) -> Iterator[AwsServices]:
    """Build and start every service for `settings`; close them all when the block ends (Firehose's
    streams flush and commit first). Kinesis connects to Kafka on first use, so serve starts
    without Kafka; Firehose's streams retry until it answers."""
    quotas = ShardQuotas.aws_defaults() if shard_quotas else None
    kinesis = KinesisService.from_settings(settings, quotas=quotas)
    firehose = FirehoseService.from_settings(settings)
    glue = GlueService.from_settings(settings)
    services = AwsServices(kinesis, firehose, glue, quotas)
    services.tables = {
        KINESIS_PREFIX: kinesis_actions(kinesis),
        FIREHOSE_PREFIX: firehose_actions(firehose),
        GLUE_PREFIX: glue_actions(glue),
    }
    try:
        firehose.start()
        yield services
    finally:
        firehose.close()  # every delivery stream flushes what it holds and commits
        kinesis.close()
        glue.close()
