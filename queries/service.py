"""The query service: Athena's query lifecycle, workgroups and saved (named) queries over the engine.

    StartQueryExecution -> QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED

A query's `?` placeholders take its ExecutionParameters (Athena's SQL literals, read by
`queries.athena_params` and bound by DuckDB); `EXECUTE name [USING ...]` runs a prepared statement
of the execution's workgroup (`queries.prepared`). A count that does not match, a value that is not a
literal or an unknown prepared statement FAILS the execution, as on Athena.

Executions, workgroups, named queries and prepared statements are kept in `queries.athena_state`'s
SQLite file in the results folder: a new service on the same folder sees them all. An execution
that was QUEUED or RUNNING when the previous server stopped is CANCELLED when the next one starts.

At most `concurrency` queries run at once; the others wait in QUEUED. A workgroup's
BytesScannedCutoffPerQuery is checked when a query's scan is measured (at its end, since DuckDB
reports bytes read per finished query): a query over the cutoff is CANCELLED with Athena's reason
and its result is not kept, but its bytes are reported and billed, as on AWS.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.errors import QueryCancelled, QueryError, QueryRefused, TableNotFound, TidelakeError
from queries.athena_params import ParameterError, bind
from queries.athena_state import AthenaState
from queries.billing import athena_bill
from queries.engine import Engine, RunControl
from queries.prepared import (
    PreparedStatement,
    execute_values,
    parse_deallocate,
    parse_execute,
    parse_prepare,
)
from queries.results import ResultStore, as_text

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
PRIMARY = "primary"
#: Athena's ErrorCategory: 1 system, 2 user, 3 other.
SYSTEM, USER, OTHER = 1, 2, 3
CUTOFF_REASON = "Query cancelled! : Bytes scanned limit was exceeded"
#: Athena's ErrorType for a wrong parameter count (seen in its answers: "Incorrect number of parameters")
PARAMETER_ERROR_TYPE = 1006
STOPPED_REASON = "the server stopped before this query finished; run it again"


class RequestError(TidelakeError):
    """A bad API request (Athena's InvalidRequestException); `code` is the Athena error type name."""

    exit_code = 2

    def __init__(self, message: str, code: str = "InvalidRequestException") -> None:
        super().__init__(message)
        self.code = code


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Execution:
    id: str
    query: str
    workgroup: str
    #: values bound to the query's `$name` placeholders by DuckDB (a named query's parameters)
    params: dict[str, Any] = field(default_factory=dict)
    #: Athena's ExecutionParameters as given: SQL literals for the query's `?`s, echoed back
    execution_parameters: list[str] = field(default_factory=list)
    submitted_ms: int = field(default_factory=_now_ms)
    state: str = "QUEUED"
    reason: str = ""
    error_category: int | None = None
    error_type: int | None = None
    started_ms: int | None = None
    completed_ms: int | None = None
    bytes_scanned: int = 0
    engine_ms: int = 0
    rows: int = 0
    rows_scanned: int = 0
    planning_ms: int = 0
    #: the statement run, when it is not `query` itself (the prepared statement of an EXECUTE)
    ran: str = ""
    #: Athena's QueryExecutionContext as given (Database, Catalog); echoed, the lake is the only one
    context: dict[str, str] = field(default_factory=dict)
    control: RunControl = field(default_factory=RunControl, repr=False)

    @property
    def queue_ms(self) -> int:
        return (self.started_ms or self.completed_ms or _now_ms()) - self.submitted_ms

    @property
    def total_ms(self) -> int:
        return (self.completed_ms or _now_ms()) - self.submitted_ms

    def record(self) -> dict[str, Any]:
        """This execution as JSON for `AthenaState` (a named query's values as Athena text)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "control"}
        body["params"] = {name: as_text(value) for name, value in self.params.items()}
        body["execution_parameters"] = list(self.execution_parameters)
        return body

    @classmethod
    def from_record(cls, body: dict[str, Any]) -> Execution:
        known = {f for f in cls.__dataclass_fields__ if f != "control"}
        return cls(**{k: v for k, v in body.items() if k in known})


@dataclass
class Workgroup:
    name: str
    description: str = ""
    bytes_scanned_cutoff: int | None = None
    created_ms: int = field(default_factory=_now_ms)


@dataclass
class SavedQuery:
    id: str
    name: str
    query: str
    workgroup: str = PRIMARY
    description: str = ""
    database: str = "default"


class QueryService:
    """Everything the HTTP API serves, with no HTTP in it.

    `state_folder` holds the SQLite state (default: the results folder); everything kept there by an
    earlier service on the same folder is loaded here. `results_uri`, when the results folder is
    also served as an S3 bucket (`s3://tidelake-query-results/`), makes each execution's
    OutputLocation `<results_uri><id>.csv`, which PyAthena's PandasCursor and awswrangler read;
    without it OutputLocation is the CSV file's path. `ddl(query, database)` runs a DDL statement
    against a catalog (`queries.athena_ddl.AthenaDdl.run`: its result table, None when the query is
    not DDL, QueryError when it fails); without it every query goes to the engine."""

    def __init__(
        self,
        engine: Engine,
        results: ResultStore,
        concurrency: int = 2,
        state_folder: Path | None = None,
        results_uri: str | None = None,
        ddl: Callable[[str, str], pa.Table | None] | None = None,
    ) -> None:
        self.engine = engine
        self.ddl = ddl
        self.results = results
        self.results_uri = results_uri
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tidelake-query")
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._tokens: dict[str, str] = {}
        self.workgroups: dict[str, Workgroup] = {PRIMARY: Workgroup(PRIMARY, "the default workgroup")}
        self.saved: dict[str, SavedQuery] = {}
        #: (workgroup, statement name) -> prepared statement
        self.prepared: dict[tuple[str, str], PreparedStatement] = {}
        self.state = AthenaState(state_folder or results.folder)
        self._load()

    def _load(self) -> None:
        for name, body in self.state.all("workgroups"):
            self.workgroups[name] = Workgroup(**body)
        for key, body in self.state.all("named_queries"):
            self.saved[key] = SavedQuery(**body)
        for _, body in self.state.all("prepared_statements"):
            statement = PreparedStatement(**body)
            self.prepared[(statement.workgroup, statement.name)] = statement
        for key, body in self.state.all("executions"):
            execution = Execution.from_record(body)
            if execution.state not in TERMINAL:
                execution.state, execution.reason = "CANCELLED", STOPPED_REASON
                execution.error_category, execution.error_type = SYSTEM, 401
                execution.completed_ms = execution.completed_ms or _now_ms()
                self.state.put("executions", key, execution.record())
            self._executions[key] = execution
        for token, body in self.state.all("tokens"):
            if body["id"] in self._executions:
                self._tokens[token] = body["id"]

    def close(self) -> None:
        with self._lock:
            running = [e for e in self._executions.values() if e.state not in TERMINAL]
        for execution in running:
            execution.control.stop("the server is shutting down")
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.state.close()

    # -- executions --------------------------------------------------------------------------
    def start(
        self,
        query: str,
        workgroup: str = PRIMARY,
        client_token: str | None = None,
        params: dict[str, Any] | None = None,
        execution_parameters: list[str] | None = None,
        context: dict[str, str] | None = None,
    ) -> str:
        """Queue `query`: `params` are bound to its `$name` placeholders by DuckDB, `execution_parameters`
        (Athena's, SQL literals) to its `?`s, never pasted into its text."""
        if not query or not query.strip():
            msg = "QueryString is empty; give one SELECT statement"
            raise RequestError(msg)
        self.workgroup(workgroup)
        with self._lock:
            if client_token and client_token in self._tokens:
                earlier = self._executions[self._tokens[client_token]]
                if (earlier.query, earlier.workgroup, earlier.execution_parameters) != (
                    query,
                    workgroup,
                    list(execution_parameters or []),
                ) or (params is not None and earlier.params != params):
                    msg = (
                        f"Idempotent parameters do not match: ClientRequestToken {client_token} was used "
                        f"for query {earlier.id} with another QueryString or WorkGroup; use a new token"
                    )
                    raise RequestError(msg)
                return earlier.id  # Athena's idempotency token: the same request, the same execution
            execution = Execution(
                str(uuid.uuid4()), query, workgroup, dict(params or {}), list(execution_parameters or [])
            )
            execution.context = dict(context or {})
            self._executions[execution.id] = execution
            if client_token:
                self._tokens[client_token] = execution.id
        self.state.put("executions", execution.id, execution.record())
        if client_token:
            self.state.put("tokens", client_token, {"id": execution.id})
        self._pool.submit(self._run, execution)
        return execution.id

    def _run(self, execution: Execution) -> None:
        with self._lock:
            if execution.state != "QUEUED":
                return  # stopped while queued
            execution.state = "RUNNING"
            execution.started_ms = _now_ms()
        cutoff = self.workgroups.get(execution.workgroup, Workgroup(PRIMARY)).bytes_scanned_cutoff
        try:
            if self._utility(execution) or self._ddl(execution):
                return
            sql, values = self._statement(execution)
            result = self.engine.run(
                sql, values, control=execution.control, database=execution.context.get("Database")
            )
            execution.bytes_scanned = result.bytes_scanned
            execution.engine_ms = result.engine_ms
            execution.rows_scanned = result.rows_scanned
            execution.planning_ms = result.planning_ms
            if cutoff is not None and result.bytes_scanned > cutoff:
                self._finish(execution, "CANCELLED", CUTOFF_REASON, USER, 1006)
                return
            execution.rows = self.results.save(execution.id, result.table)
            self._finish(execution, "SUCCEEDED", "", None, None)
        except ParameterError as exc:
            self._finish(execution, "FAILED", str(exc), USER, PARAMETER_ERROR_TYPE)
        except QueryCancelled as exc:
            self._finish(execution, "CANCELLED", str(exc), USER, 206 if "time limit" in str(exc) else 1005)
        except (QueryRefused, TableNotFound, QueryError, RequestError) as exc:
            self._finish(execution, "FAILED", str(exc), USER, 1000)
        except MemoryError:
            msg = (
                "the result did not fit in the server's memory while it was kept; "
                "select fewer or narrower columns, add a LIMIT or aggregate"
            )
            self._finish(execution, "FAILED", msg, USER, 1000)
        except Exception as exc:  # the service keeps serving; the query records why it failed
            self._finish(execution, "FAILED", f"internal error: {type(exc).__name__}: {exc}", SYSTEM, 401)

    def _finish(
        self, execution: Execution, state: str, reason: str, category: int | None, kind: int | None
    ) -> None:
        with self._lock:
            if execution.state in TERMINAL:
                return
            execution.state, execution.reason = state, reason
            execution.error_category, execution.error_type = category, kind
            execution.completed_ms = _now_ms()
            record = execution.record()
        self.state.put("executions", execution.id, record)

    def _utility(self, execution: Execution) -> bool:
        """Run `PREPARE name FROM ...` or `DEALLOCATE PREPARE name` in the execution's workgroup (an
        empty result, SUCCEEDED); False for any other statement. PREPARE replaces a statement of that name."""
        prepared = parse_prepare(execution.query)
        name = parse_deallocate(execution.query)
        if prepared is None and name is None:
            return False
        if prepared is not None:
            exists = (execution.workgroup, prepared[0]) in self.prepared
            self.put_prepared(prepared[0], execution.workgroup, prepared[1], create=not exists)
        else:
            self.delete_prepared(str(name), execution.workgroup)
        self.results.save(execution.id, pa.table({}))
        self._finish(execution, "SUCCEEDED", "", None, None)
        return True

    def _ddl(self, execution: Execution) -> bool:
        """Run a DDL statement through `self.ddl` (SUCCEEDED with its result); False for any other."""
        if self.ddl is None:
            return False
        table = self.ddl(execution.query, execution.context.get("Database") or "default")
        if table is None:
            return False
        execution.rows = self.results.save(execution.id, table)
        self._finish(execution, "SUCCEEDED", "", None, None)
        return True

    def _statement(self, execution: Execution) -> tuple[str, dict[str, Any] | list[Any]]:
        """(SQL, values for DuckDB to bind) of an execution: its query and `$name` values, or its `?`s'
        typed ExecutionParameters, or the prepared statement an `EXECUTE` names with its values."""
        if execution.params:
            return execution.query, execution.params
        executed = parse_execute(execution.query)
        if executed is None:
            return execution.query, bind(execution.query, execution.execution_parameters)
        name, using = executed
        statement = self.prepared.get((execution.workgroup, name))
        if statement is None:
            msg = f"Prepared statement {name} was not found in workgroup {execution.workgroup}"
            raise ParameterError(msg)
        execution.ran = statement.query
        values = execute_values(using, execution.execution_parameters)
        return statement.query, bind(statement.query, values)

    def output_location(self, query_id: str) -> str:
        """Athena's ResultConfiguration.OutputLocation of an execution (see the class docstring)."""
        if self.results_uri:
            return f"{self.results_uri.rstrip('/')}/{query_id}.csv"
        return str(self.results.csv_path(query_id))

    def get(self, query_id: str) -> Execution:
        with self._lock:
            execution = self._executions.get(query_id)
        if execution is None:
            msg = f"QueryExecution {query_id} was not found"
            raise RequestError(msg)
        return execution

    def stop(self, query_id: str) -> None:
        execution = self.get(query_id)
        with self._lock:
            queued = execution.state == "QUEUED"
        if queued:
            self._finish(execution, "CANCELLED", "Query cancelled by user", USER, 1005)
        execution.control.stop("Query cancelled by user")

    def forget_executions(self) -> int:
        """Drop every ended execution (SUCCEEDED, FAILED, CANCELLED): from memory, from the saved state
        and with its result files, as if it had never run (a test stack's reset; Athena itself keeps
        history 45 days). Queued and running ones stay. Returns how many were dropped."""
        with self._lock:
            ended = [key for key, e in self._executions.items() if e.state in TERMINAL]
            for key in ended:
                del self._executions[key]
            self._tokens = {token: key for token, key in self._tokens.items() if key not in ended}
        for key in ended:
            self.state.delete("executions", key)
            self.results.forget(key)
        for token in [t for t, body in self.state.all("tokens") if body.get("id") in ended]:
            self.state.delete("tokens", token)
        return len(ended)

    def executions(self, workgroup: str | None = None) -> list[Execution]:
        with self._lock:
            found = [e for e in self._executions.values() if workgroup is None or e.workgroup == workgroup]
        return sorted(found, key=lambda e: e.submitted_ms, reverse=True)

    def page(self, query_id: str, max_results: int, next_token: str | None) -> tuple[list, list, str | None]:
        """(ColumnInfo, rows as text with the header row first, next token) of a finished query."""
        execution = self.get(query_id)
        if execution.state != "SUCCEEDED":
            msg = f"Query has not yet finished. Current state: {execution.state}"
            if execution.state in TERMINAL:
                msg = f"Query did not succeed. Current state: {execution.state}: {execution.reason}"
            raise RequestError(msg)
        if not 1 <= max_results <= 1000:
            msg = f"MaxResults must be between 1 and 1000, got {max_results}"
            raise RequestError(msg)
        offset = decode_token(next_token, query_id)
        columns, rows = self.results.load(query_id)
        all_rows = [[c["Name"] for c in columns], *rows] if columns else rows
        chunk = all_rows[offset : offset + max_results]
        end = offset + len(chunk)
        return columns, chunk, encode_token(query_id, end) if end < len(all_rows) else None

    def runtime_statistics(self, execution: Execution) -> dict[str, Any]:
        """Athena's QueryRuntimeStatistics (GetQueryRuntimeStatistics) from what DuckDB measured.

        Timeline: queue, planning (DuckDB's planner), engine and total times in ms; service pre- and
        post-processing are 0. Rows: InputRows = rows out of DuckDB's table scans (the profiler's
        total_rows_scanned: after the filters DuckDB pushes into a scan), InputBytes = bytes read
        from the lake (the billed DataScannedInBytes), OutputRows = result rows, OutputBytes = the
        size of the `<id>.csv` result file. OutputStage: one stage, no plan tree."""
        rows = {
            "InputRows": execution.rows_scanned,
            "InputBytes": execution.bytes_scanned,
            "OutputBytes": self._output_bytes(execution),
            "OutputRows": execution.rows,
        }
        out: dict[str, Any] = {
            "Timeline": {
                "QueryQueueTimeInMillis": execution.queue_ms,
                "ServicePreProcessingTimeInMillis": 0,
                "QueryPlanningTimeInMillis": execution.planning_ms,
                "EngineExecutionTimeInMillis": execution.engine_ms,
                "ServiceProcessingTimeInMillis": 0,
                "TotalExecutionTimeInMillis": execution.total_ms,
            },
            "Rows": rows,
        }
        if execution.state in TERMINAL:
            out["OutputStage"] = {
                "StageId": 0,
                "State": "FINISHED" if execution.state == "SUCCEEDED" else execution.state,
                "OutputBytes": rows["OutputBytes"],
                "OutputRows": rows["OutputRows"],
                "InputBytes": rows["InputBytes"],
                "InputRows": rows["InputRows"],
                "ExecutionTime": execution.engine_ms,
            }
        return out

    def _output_bytes(self, execution: Execution) -> int:
        if execution.state != "SUCCEEDED":
            return 0
        try:
            return self.results.csv_path(execution.id).stat().st_size
        except FileNotFoundError:
            return 0

    def statistics(self, execution: Execution) -> dict[str, Any]:
        return {
            "EngineExecutionTimeInMillis": execution.engine_ms,
            "DataScannedInBytes": execution.bytes_scanned,
            "TotalExecutionTimeInMillis": execution.total_ms,
            "QueryQueueTimeInMillis": execution.queue_ms,
            "ServiceProcessingTimeInMillis": 0,
            "ResultReuseInformation": {"ReusedPreviousResult": False},
        }

    def bill_usd(self, execution: Execution) -> float:
        """Failed queries are free; cancelled ones pay for what they scanned (Athena's rule)."""
        return (
            0.0
            if execution.state in ("FAILED", "QUEUED", "RUNNING")
            else athena_bill(execution.bytes_scanned).usd
        )

    # -- workgroups ---------------------------------------------------------------------------
    def workgroup(self, name: str) -> Workgroup:
        found = self.workgroups.get(name)
        if found is None:
            msg = f"WorkGroup {name} is not found; known: {', '.join(sorted(self.workgroups))}"
            raise RequestError(msg)
        return found

    def put_workgroup(
        self, name: str, description: str = "", cutoff: int | None = None, create: bool = True
    ) -> None:
        if not name or len(name) > 128:
            msg = "WorkGroup name must be 1-128 characters"
            raise RequestError(msg)
        if cutoff is not None and cutoff < 10_000_000:
            msg = f"BytesScannedCutoffPerQuery must be at least 10000000 (10 MB, as on Athena), got {cutoff}"
            raise RequestError(msg)
        with self._lock:
            if create and name in self.workgroups:
                msg = f"WorkGroup {name} already exists"
                raise RequestError(msg)
            if not create:
                self.workgroup(name)
            created = self.workgroups[name].created_ms if name in self.workgroups else _now_ms()
            self.workgroups[name] = Workgroup(name, description, cutoff, created)
            record = asdict(self.workgroups[name])
        self.state.put("workgroups", name, record)

    def delete_workgroup(self, name: str) -> None:
        if name == PRIMARY:
            msg = "the primary workgroup cannot be deleted"
            raise RequestError(msg)
        self.workgroup(name)
        with self._lock:
            del self.workgroups[name]
            gone = [key for key in self.prepared if key[0] == name]
            for key in gone:
                del self.prepared[key]
        self.state.delete("workgroups", name)
        for workgroup, statement in gone:
            self.state.delete("prepared_statements", f"{workgroup}/{statement}")

    # -- saved (named) queries ----------------------------------------------------------------
    def save_query(self, name: str, query: str, workgroup: str = PRIMARY, description: str = "") -> str:
        if not name or not query:
            msg = "Name and QueryString are required"
            raise RequestError(msg)
        self.workgroup(workgroup)
        saved = SavedQuery(str(uuid.uuid4()), name, query, workgroup, description)
        with self._lock:
            self.saved[saved.id] = saved
        self.state.put("named_queries", saved.id, asdict(saved))
        return saved.id

    def update_saved(self, named_query_id: str, name: str, query: str, description: str | None) -> None:
        """UpdateNamedQuery: a new name, query and (when given) description; its workgroup stays."""
        saved = self.saved_query(named_query_id)
        changed = SavedQuery(
            saved.id,
            name,
            query,
            saved.workgroup,
            saved.description if description is None else description,
            saved.database,
        )
        with self._lock:
            self.saved[saved.id] = changed
        self.state.put("named_queries", saved.id, asdict(changed))

    def saved_query(self, named_query_id: str) -> SavedQuery:
        found = self.saved.get(named_query_id)
        if found is None:
            msg = f"NamedQuery {named_query_id} was not found"
            raise RequestError(msg)
        return found

    def delete_saved(self, named_query_id: str) -> None:
        self.saved_query(named_query_id)
        with self._lock:
            self.saved.pop(named_query_id, None)
        self.state.delete("named_queries", named_query_id)

    # -- prepared statements (per workgroup) --------------------------------------------------
    def put_prepared(
        self, name: str, workgroup: str, query: str, description: str = "", *, create: bool = True
    ) -> None:
        """CreatePreparedStatement (`create`) or UpdatePreparedStatement: InvalidRequestException for a
        name taken (create) or an unknown workgroup, ResourceNotFoundException for an unknown name (update)."""
        self.workgroup(workgroup)
        with self._lock:
            exists = (workgroup, name) in self.prepared
            if create and exists:
                msg = f"Prepared statement {name} already exists in workgroup {workgroup}"
                raise RequestError(msg)
            if not create and not exists:
                raise _no_statement(name, workgroup)
            statement = PreparedStatement(name, workgroup, query, description)
            self.prepared[(workgroup, name)] = statement
        self.state.put("prepared_statements", f"{workgroup}/{name}", asdict(statement))

    def prepared_statement(self, name: str, workgroup: str) -> PreparedStatement:
        self.workgroup(workgroup)
        found = self.prepared.get((workgroup, name))
        if found is None:
            raise _no_statement(name, workgroup)
        return found

    def prepared_statements(self, workgroup: str) -> list[PreparedStatement]:
        """The workgroup's statements by name."""
        self.workgroup(workgroup)
        with self._lock:
            found = [s for (wg, _), s in self.prepared.items() if wg == workgroup]
        return sorted(found, key=lambda s: s.name)

    def delete_prepared(self, name: str, workgroup: str) -> None:
        self.prepared_statement(name, workgroup)
        with self._lock:
            self.prepared.pop((workgroup, name), None)
        self.state.delete("prepared_statements", f"{workgroup}/{name}")


def _no_statement(name: str, workgroup: str) -> RequestError:
    msg = f"Prepared statement {name} was not found in workgroup {workgroup}"
    return RequestError(msg, "ResourceNotFoundException")


def encode_token(query_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{query_id}:{offset}".encode()).decode()


def decode_token(token: str | None, query_id: str) -> int:
    if not token:
        return 0
    try:
        owner, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition(":")
        if owner != query_id or int(offset) < 0:
            raise ValueError(token)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"NextToken {token!r} does not belong to query {query_id}; start again without a token"
        raise RequestError(msg) from exc
