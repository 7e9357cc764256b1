"""The HTTP API: Athena's JSON 1.1 wire protocol at `POST /` and a REST/JSON view under `/api`.

Athena clients (boto3's `athena` client, PyAthena) POST to `/` with `X-Amz-Target:
AmazonAthena.<Action>` and a JSON body; any AWS signature is accepted. When the server has an API
token, REST callers send `Authorization: Bearer <token>` and Athena clients use the token as their
access key id. `/` (GET) is left for the web console; the OpenAPI document is `/openapi.json`.

Only requests for a host the server is known by are served (Starlette's TrustedHostMiddleware):
127.0.0.1, localhost and [::1] unless told more (`--allowed-host`). A web page elsewhere that
rebinds its own DNS name to 127.0.0.1 (DNS rebinding) sends its own name as Host and gets 400.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from queries.catalog import discover
from queries.service import Execution, QueryService, RequestError
from queries.web import PipelineReader, mount_console

AMZ_JSON = "application/x-amz-json-1.1"
#: The names a server bound to loopback is known by; anything else in a Host header is refused.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_SIGV4_KEY = re.compile(r"Credential=([^/,\s]+)/")


def _execution_json(service: QueryService, e: Execution) -> dict[str, Any]:
    status: dict[str, Any] = {"State": e.state, "SubmissionDateTime": e.submitted_ms / 1000}
    if e.reason:
        status["StateChangeReason"] = e.reason
    if e.completed_ms:
        status["CompletionDateTime"] = e.completed_ms / 1000
    if e.error_category is not None:
        status["AthenaError"] = {
            "ErrorCategory": e.error_category,
            "ErrorType": e.error_type,
            "Retryable": False,
            "ErrorMessage": e.reason,
        }
    return {
        "QueryExecutionId": e.id,
        "Query": e.query,
        "StatementType": "DML",
        "ResultConfiguration": {"OutputLocation": str(service.results.csv_path(e.id))},
        "QueryExecutionContext": {"Database": "default", "Catalog": "tidelake"},
        "Status": status,
        "Statistics": service.statistics(e),
        "WorkGroup": e.workgroup,
        "EngineVersion": {"SelectedEngineVersion": "DuckDB", "EffectiveEngineVersion": "DuckDB"},
    }


def _workgroup_json(service: QueryService, name: str) -> dict[str, Any]:
    wg = service.workgroup(name)
    config: dict[str, Any] = {
        "EnforceWorkGroupConfiguration": False,
        "PublishCloudWatchMetricsEnabled": False,
    }
    if wg.bytes_scanned_cutoff is not None:
        config["BytesScannedCutoffPerQuery"] = wg.bytes_scanned_cutoff
    return {
        "Name": wg.name,
        "State": "ENABLED",
        "Description": wg.description,
        "CreationTime": wg.created_ms / 1000,
        "Configuration": config,
    }


def _saved_json(service: QueryService, named_query_id: str) -> dict[str, Any]:
    s = service.saved_query(named_query_id)
    return {
        "Name": s.name,
        "Description": s.description,
        "Database": s.database,
        "QueryString": s.query,
        "NamedQueryId": s.id,
        "WorkGroup": s.workgroup,
    }


def _paged(items: list[Any], body: dict[str, Any], limit_max: int = 50) -> tuple[list[Any], str | None]:
    size = int(body.get("MaxResults") or limit_max)
    start = int(body.get("NextToken") or 0)
    chunk = items[start : start + size]
    return chunk, str(start + size) if start + size < len(items) else None


def _empty(action: Callable[[str], None], argument: str) -> dict[str, Any]:
    """Run an action that answers nothing; Athena replies `{}`."""
    action(argument)
    return {}


def athena_actions(service: QueryService) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """Athena action name -> handler of its JSON body."""

    def start(b: dict[str, Any]) -> dict[str, Any]:
        qid = service.start(
            b.get("QueryString", ""), b.get("WorkGroup") or "primary", b.get("ClientRequestToken")
        )
        return {"QueryExecutionId": qid}

    def results(b: dict[str, Any]) -> dict[str, Any]:
        columns, rows, token = service.page(
            b["QueryExecutionId"], int(b.get("MaxResults") or 1000), b.get("NextToken")
        )
        out: dict[str, Any] = {
            "UpdateCount": 0,
            "ResultSet": {
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
                "ResultSetMetadata": {"ColumnInfo": columns},
            },
        }
        if token:
            out["NextToken"] = token
        return out

    def list_executions(b: dict[str, Any]) -> dict[str, Any]:
        ids, token = _paged([e.id for e in service.executions(b.get("WorkGroup"))], b)
        return {"QueryExecutionIds": ids, **({"NextToken": token} if token else {})}

    def list_named(b: dict[str, Any]) -> dict[str, Any]:
        wg = b.get("WorkGroup")
        ids, token = _paged([s.id for s in service.saved.values() if wg is None or s.workgroup == wg], b)
        return {"NamedQueryIds": ids, **({"NextToken": token} if token else {})}

    def create_wg(b: dict[str, Any]) -> dict[str, Any]:
        config = b.get("Configuration") or {}
        service.put_workgroup(
            b.get("Name", ""), b.get("Description", ""), config.get("BytesScannedCutoffPerQuery")
        )
        return {}

    def update_wg(b: dict[str, Any]) -> dict[str, Any]:
        wg = service.workgroup(b.get("WorkGroup", ""))
        updates = b.get("ConfigurationUpdates") or {}
        cutoff = wg.bytes_scanned_cutoff
        if updates.get("RemoveBytesScannedCutoffPerQuery"):
            cutoff = None
        cutoff = updates.get("BytesScannedCutoffPerQuery", cutoff)
        service.put_workgroup(wg.name, b.get("Description", wg.description), cutoff, create=False)
        return {}

    def list_wg(b: dict[str, Any]) -> dict[str, Any]:
        names, token = _paged(sorted(service.workgroups), b)
        found = [
            {"Name": n, "State": "ENABLED", "Description": service.workgroups[n].description} for n in names
        ]
        return {"WorkGroups": found, **({"NextToken": token} if token else {})}

    return {
        "StartQueryExecution": start,
        "GetQueryExecution": lambda b: {
            "QueryExecution": _execution_json(service, service.get(b["QueryExecutionId"]))
        },
        "BatchGetQueryExecution": lambda b: {
            "QueryExecutions": [
                _execution_json(service, service.get(i)) for i in b.get("QueryExecutionIds", [])
            ],
            "UnprocessedQueryExecutionIds": [],
        },
        "GetQueryResults": results,
        "StopQueryExecution": lambda b: _empty(service.stop, b["QueryExecutionId"]),
        "ListQueryExecutions": list_executions,
        "CreateNamedQuery": lambda b: {
            "NamedQueryId": service.save_query(
                b.get("Name", ""),
                b.get("QueryString", ""),
                b.get("WorkGroup") or "primary",
                b.get("Description", ""),
            )
        },
        "GetNamedQuery": lambda b: {"NamedQuery": _saved_json(service, b["NamedQueryId"])},
        "BatchGetNamedQuery": lambda b: {
            "NamedQueries": [_saved_json(service, i) for i in b.get("NamedQueryIds", [])],
            "UnprocessedNamedQueryIds": [],
        },
        "ListNamedQueries": list_named,
        "DeleteNamedQuery": lambda b: _empty(service.delete_saved, b["NamedQueryId"]),
        "CreateWorkGroup": create_wg,
        "GetWorkGroup": lambda b: {"WorkGroup": _workgroup_json(service, b["WorkGroup"])},
        "UpdateWorkGroup": update_wg,
        "DeleteWorkGroup": lambda b: _empty(service.delete_workgroup, b["WorkGroup"]),
        "ListWorkGroups": list_wg,
    }


# -- REST models (the OpenAPI document) ----------------------------------------------------------
class StartRequest(BaseModel):
    sql: str = Field(
        min_length=1, max_length=100_000, description="one SELECT/WITH/EXPLAIN/DESCRIBE/SHOW/SUMMARIZE"
    )
    workgroup: str = Field(default="primary", min_length=1, max_length=128)


class StartResponse(BaseModel):
    id: str


class ExecutionView(BaseModel):
    id: str
    sql: str
    workgroup: str
    state: str
    reason: str
    error_category: int | None
    bytes_scanned: int
    cost_usd: float
    engine_ms: int
    queue_ms: int
    total_ms: int
    rows: int


class ResultsPage(BaseModel):
    columns: list[dict[str, Any]]
    rows: list[list[str | None]]
    next_token: str | None


class SavedQueryIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    sql: str = Field(min_length=1, max_length=100_000)
    workgroup: str = Field(default="primary", min_length=1, max_length=128)
    description: str = Field(default="", max_length=1024)


class WorkgroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=1024)
    bytes_scanned_cutoff: int | None = Field(default=None, ge=10_000_000)


def _view(service: QueryService, e: Execution) -> ExecutionView:
    return ExecutionView(
        id=e.id,
        sql=e.query,
        workgroup=e.workgroup,
        state=e.state,
        reason=e.reason,
        error_category=e.error_category,
        bytes_scanned=e.bytes_scanned,
        cost_usd=service.bill_usd(e),
        engine_ms=e.engine_ms,
        queue_ms=e.queue_ms,
        total_ms=e.total_ms,
        rows=e.rows,
    )


def is_loopback(host: str) -> bool:
    """True when binding `host` reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def known_hosts(bind: str, extra: Sequence[str] = ()) -> list[str]:
    """The Host names to accept: loopback's, the address bound (unless a wildcard), and `extra`."""
    hosts = list(LOOPBACK_HOSTS)
    bare = bind.strip("[]")
    if bare not in ("", "0.0.0.0", "::"):
        hosts.append(f"[{bare}]" if ":" in bare else bare)
    hosts += [h.strip().lower() for h in extra if h.strip()]
    return list(dict.fromkeys(hosts))


def create_app(
    service: QueryService,
    token: str | None = None,
    pipeline: PipelineReader | None = None,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
) -> FastAPI:
    app = FastAPI(title="tidelake queries", version="1", description=__doc__)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        signed = _SIGV4_KEY.search(authorization or "")
        if given != token and not (signed and signed.group(1) == token):
            raise HTTPException(
                status_code=401, detail="missing or wrong token: send Authorization: Bearer <token>"
            )

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if "not found" in str(exc) else 400)

    actions = athena_actions(service)

    @app.post("/", include_in_schema=False)
    async def athena(request: Request, x_amz_target: Annotated[str | None, Header()] = None) -> JSONResponse:
        try:
            authorized(request.headers.get("authorization"))
        except HTTPException:
            return _amz_error(
                "UnrecognizedClientException", "The security token included in the request is invalid", 400
            )
        action = (x_amz_target or "").removeprefix("AmazonAthena.")
        handler = actions.get(action)
        if handler is None:
            return _amz_error(
                "UnknownOperationException", f"unknown or unsupported action {x_amz_target!r}", 400
            )
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError:
            return _amz_error("InvalidRequestException", "the body must be one JSON object", 400)
        try:
            result = await _in_thread(handler, body)
        except RequestError as exc:
            return _amz_error(exc.code, str(exc), 400)
        except (KeyError, TypeError, ValueError) as exc:
            return _amz_error("InvalidRequestException", f"missing or bad parameter: {exc}", 400)
        return JSONResponse(result, media_type=AMZ_JSON)

    guard = [Depends(authorized)]

    @app.post("/api/queries", response_model=StartResponse, dependencies=guard)
    def start_query(body: StartRequest) -> StartResponse:
        return StartResponse(id=service.start(body.sql, body.workgroup))

    @app.get("/api/queries", response_model=list[ExecutionView], dependencies=guard)
    def list_queries(workgroup: str | None = None) -> list[ExecutionView]:
        return [_view(service, e) for e in service.executions(workgroup)]

    @app.get("/api/queries/{query_id}", response_model=ExecutionView, dependencies=guard)
    def get_query(query_id: str) -> ExecutionView:
        return _view(service, service.get(query_id))

    @app.get("/api/queries/{query_id}/results", response_model=ResultsPage, dependencies=guard)
    def get_results(
        query_id: str, max_results: Annotated[int, Query(ge=1, le=1000)] = 1000, next_token: str | None = None
    ) -> ResultsPage:
        columns, rows, token = service.page(query_id, max_results, next_token)
        return ResultsPage(columns=columns, rows=rows, next_token=token)

    @app.post("/api/queries/{query_id}/stop", response_model=ExecutionView, dependencies=guard)
    def stop_query(query_id: str) -> ExecutionView:
        service.stop(query_id)
        return _view(service, service.get(query_id))

    @app.get("/api/named-queries", dependencies=guard)
    def list_saved() -> list[dict[str, Any]]:
        return [_saved_json(service, i) for i in list(service.saved)]

    @app.post("/api/named-queries", dependencies=guard)
    def create_saved(body: SavedQueryIn) -> dict[str, Any]:
        return {"id": service.save_query(body.name, body.sql, body.workgroup, body.description)}

    @app.get("/api/named-queries/{named_query_id}", dependencies=guard)
    def get_saved(named_query_id: str) -> dict[str, Any]:
        return _saved_json(service, named_query_id)

    @app.delete("/api/named-queries/{named_query_id}", dependencies=guard)
    def delete_saved(named_query_id: str) -> dict[str, Any]:
        service.delete_saved(named_query_id)
        return {"deleted": named_query_id}

    @app.get("/api/workgroups", dependencies=guard)
    def list_workgroups() -> list[dict[str, Any]]:
        return [_workgroup_json(service, n) for n in sorted(service.workgroups)]

    @app.post("/api/workgroups", dependencies=guard)
    def create_workgroup(body: WorkgroupIn) -> dict[str, Any]:
        service.put_workgroup(body.name, body.description, body.bytes_scanned_cutoff)
        return _workgroup_json(service, body.name)

    mount_console(app, service.engine, pipeline, guard)

    @app.get("/api/catalog", dependencies=guard)
    def catalog() -> list[dict[str, Any]]:
        return [
            {"table": t.name, "files": len(t.files), "partitions": t.partition_count, "bytes": t.total_bytes}
            for t in discover(service.engine.lake)
        ]

    return app


async def _in_thread(
    handler: Callable[[dict[str, Any]], dict[str, Any]], body: dict[str, Any]
) -> dict[str, Any]:
    return await run_in_threadpool(handler, body)


def _amz_error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse(
        {"__type": code, "Message": message, "message": message}, status_code=status, media_type=AMZ_JSON
    )
