"""The query service: Athena's query lifecycle, workgroups and saved (named) queries over the engine.

    StartQueryExecution -> QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.errors import QueryCancelled, QueryError, QueryRefused, TableNotFound, TidelakeError
from queries.billing import athena_bill
from queries.engine import Engine, RunControl
from queries.results import ResultStore

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
PRIMARY = "primary"
#: Athena's ErrorCategory: 1 system, 2 user, 3 other.
SYSTEM, USER, OTHER = 1, 2, 3
CUTOFF_REASON = "Query cancelled! : Bytes scanned limit was exceeded"


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
    control: RunControl = field(default_factory=RunControl, repr=False)

    @property
    def queue_ms(self) -> int:
        return (self.started_ms or self.completed_ms or _now_ms()) - self.submitted_ms

    @property
    def total_ms(self) -> int:
        return (self.completed_ms or _now_ms()) - self.submitted_ms


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
    """Everything the HTTP API serves, with no HTTP in it."""

    def __init__(self, engine: Engine, results: ResultStore, concurrency: int = 2) -> None:
        self.engine = engine
        self.results = results
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tidelake-query")
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._tokens: dict[str, str] = {}
        self.workgroups: dict[str, Workgroup] = {PRIMARY: Workgroup(PRIMARY, "the default workgroup")}
        self.saved: dict[str, SavedQuery] = {}

    def close(self) -> None:
        with self._lock:
            running = [e for e in self._executions.values() if e.state not in TERMINAL]
        for execution in running:
            execution.control.stop("the server is shutting down")
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- executions --------------------------------------------------------------------------
    def start(
        self,
        query: str,
        workgroup: str = PRIMARY,
        client_token: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> str:
        """Queue `query` (with `params` bound to its `$name` placeholders by DuckDB, never pasted in)."""
        if not query or not query.strip():
            msg = "QueryString is empty; give one SELECT statement"
            raise RequestError(msg)
        self.workgroup(workgroup)
        with self._lock:
            if client_token and client_token in self._tokens:
                earlier = self._executions[self._tokens[client_token]]
                if (earlier.query, earlier.workgroup, earlier.params) != (query, workgroup, params or {}):
                    msg = (
                        f"Idempotent parameters do not match: ClientRequestToken {client_token} was used "
                        f"for query {earlier.id} with another QueryString or WorkGroup; use a new token"
                    )
                    raise RequestError(msg)
                return earlier.id  # Athena's idempotency token: the same request, the same execution
            execution = Execution(str(uuid.uuid4()), query, workgroup, dict(params or {}))
            self._executions[execution.id] = execution
            if client_token:
                self._tokens[client_token] = execution.id
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
            result = self.engine.run(execution.query, execution.params, control=execution.control)
            execution.bytes_scanned = result.bytes_scanned
            execution.engine_ms = result.engine_ms
            if cutoff is not None and result.bytes_scanned > cutoff:
                self._finish(execution, "CANCELLED", CUTOFF_REASON, USER, 1006)
                return
            execution.rows = self.results.save(execution.id, result.table)
            self._finish(execution, "SUCCEEDED", "", None, None)
        except QueryCancelled as exc:
            self._finish(execution, "CANCELLED", str(exc), USER, 206 if "time limit" in str(exc) else 1005)
        except (QueryRefused, TableNotFound, QueryError) as exc:
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
            self.workgroups[name] = Workgroup(name, description, cutoff)

    def delete_workgroup(self, name: str) -> None:
        if name == PRIMARY:
            msg = "the primary workgroup cannot be deleted"
            raise RequestError(msg)
        self.workgroup(name)
        with self._lock:
            del self.workgroups[name]

    # -- saved (named) queries ----------------------------------------------------------------
    def save_query(self, name: str, query: str, workgroup: str = PRIMARY, description: str = "") -> str:
        if not name or not query:
            msg = "Name and QueryString are required"
            raise RequestError(msg)
        self.workgroup(workgroup)
        saved = SavedQuery(str(uuid.uuid4()), name, query, workgroup, description)
        with self._lock:
            self.saved[saved.id] = saved
        return saved.id

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
