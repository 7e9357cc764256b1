"""The HTTP API: Athena's JSON 1.1 wire protocol at `POST /` and a REST/JSON view under `/api`.

Athena clients (boto3's `athena` client, PyAthena) POST to `/` with `X-Amz-Target:
AmazonAthena.<Action>` and a JSON body; any AWS signature is accepted. When the server has an API
token, REST callers send `Authorization: Bearer <token>` and Athena clients use the token as their
access key id. `/` (GET) is left for the web console; the OpenAPI document is `/openapi.json`, and
`/docs` (Swagger UI) and `/redoc` load their scripts from this server (fastapi-offline), never a CDN.

Only requests for a host the server is known by are served (Starlette's TrustedHostMiddleware):
127.0.0.1, localhost and [::1] unless told more (`--allowed-host`). A web page elsewhere that
rebinds its own DNS name to 127.0.0.1 (DNS rebinding) sends its own name as Host and gets 400.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from core.aws_json import AwsError, error_response, json_response, read_capped, token_matches
from queries.athena import REQUESTS, athena_actions, parse_body, saved_json, workgroup_json
from queries.results import as_text
from queries.service import Execution, QueryService, RequestError
from queries.web import PipelineReader, mount_console

#: The names a server bound to loopback is known by; anything else in a Host header is refused.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: The largest request body read (Athena's QueryString is at most 262,144 characters).
MAX_BODY_BYTES = 1_048_576


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
    params: dict[str, str | None] = Field(description="a named query's parameters as bound, as text")
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
        params={name: as_text(value) for name, value in e.params.items()},
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
    # FastAPIOffline: FastAPI whose /docs and /redoc serve Swagger UI's and ReDoc's files themselves
    app = FastAPIOffline(title="tidelake queries", version="1", description=__doc__)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def cap_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            msg = f"the request body is larger than {MAX_BODY_BYTES:,} bytes"
            if request.url.path == "/":  # Athena's clients read AWS's error shape
                return _amz_error("InvalidRequestException", msg, 400)
            return JSONResponse({"detail": msg}, status_code=413)
        return await call_next(request)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        if not token_matches(authorization, token):
            raise HTTPException(
                status_code=401, detail="missing or wrong token: send Authorization: Bearer <token>"
            )

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if "not found" in str(exc) else 400)

    actions = athena_actions(service)

    @app.post("/", include_in_schema=False)
    async def athena(request: Request, x_amz_target: Annotated[str | None, Header()] = None) -> Response:
        try:
            authorized(request.headers.get("authorization"))
        except HTTPException:
            return _amz_error(
                "UnrecognizedClientException", "The security token included in the request is invalid", 400
            )
        action = (x_amz_target or "").removeprefix("AmazonAthena.")
        handler, model = actions.get(action), REQUESTS.get(action)
        if handler is None or model is None:
            return _amz_error(
                "UnknownOperationException", f"unknown or unsupported action {x_amz_target!r}", 400
            )
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            msg = f"the request body is larger than {MAX_BODY_BYTES:,} bytes"
            return _amz_error("InvalidRequestException", msg, 400)
        try:
            parsed = parse_body(model, body)
            result = await run_in_threadpool(handler, parsed)
        except RequestError as exc:
            return _amz_error(exc.code, str(exc), 400)
        return json_response(result)

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
        return [saved_json(service, i) for i in list(service.saved)]

    @app.post("/api/named-queries", dependencies=guard)
    def create_saved(body: SavedQueryIn) -> dict[str, Any]:
        return {"id": service.save_query(body.name, body.sql, body.workgroup, body.description)}

    @app.get("/api/named-queries/{named_query_id}", dependencies=guard)
    def get_saved(named_query_id: str) -> dict[str, Any]:
        return saved_json(service, named_query_id)

    @app.delete("/api/named-queries/{named_query_id}", dependencies=guard)
    def delete_saved(named_query_id: str) -> dict[str, Any]:
        service.delete_saved(named_query_id)
        return {"deleted": named_query_id}

    @app.get("/api/workgroups", dependencies=guard)
    def list_workgroups() -> list[dict[str, Any]]:
        return [workgroup_json(service, n) for n in sorted(service.workgroups)]

    @app.post("/api/workgroups", dependencies=guard)
    def create_workgroup(body: WorkgroupIn) -> dict[str, Any]:
        service.put_workgroup(body.name, body.description, body.bytes_scanned_cutoff)
        return workgroup_json(service, body.name)

    mount_console(app, service.engine, service.start, pipeline, guard)

    @app.get("/api/catalog", dependencies=guard)
    def catalog() -> list[dict[str, Any]]:
        return [
            {
                "table": t.name,
                "files": len(t.files),
                "partitions": t.partition_count,
                "bytes": t.total_bytes,
                "warnings": t.warnings(),
            }
            for t in service.engine.refresh().values()
        ]

    return app


def _amz_error(code: str, message: str, status: int) -> Response:
    return error_response(AwsError(code, message, status))
