"""One AWS endpoint: `POST /` dispatched on `X-Amz-Target` to each role's action table.

    app = aws_endpoint(query_app, {"Kinesis_20131202": kinesis_actions(kinesis)}, token, hosts)

A request `POST /` whose `X-Amz-Target` is `<prefix>.<Action>` for a prefix in `services` is
answered here (JSON 1.1, AWS's error shape from `core.aws_json`); so is `POST /_tidelake/<name>`
for a name in `admin` (the test routes, `AwsServices.admin_routes`: reset, flush), with a JSON
body and answer. Everything else (Athena's `AmazonAthena.*`, the REST API, the console) goes to
`fallback`, the query app, unchanged.

The rules of `tidelake serve` hold for both:
- only requests for a known Host are served (Starlette's TrustedHostMiddleware; 400 otherwise);
- with a token, a request must carry it as its SigV4 access key id (`Credential=<token>/...`, what
  boto3 and the AWS CLI send when the token is their access key id) or as `Bearer <token>`;
  otherwise `UnrecognizedClientException`. Any signature is accepted: none is checked.
- a body is read up to `MAX_BODY_BYTES` (8 MiB: PutRecords' 5 MiB of data as base64, with keys).

Handlers run in a thread pool (they block on Kafka).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from core.aws_json import ActionTable, AwsError, error_response, json_response, read_capped, token_matches

log = logging.getLogger(__name__)

#: The largest request body read for an AWS action answered here.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: The path of the test routes: `POST /_tidelake/<name>`.
ADMIN_PREFIX = "/_tidelake/"


def aws_endpoint(
    fallback: ASGIApp,
    services: Mapping[str, ActionTable],
    token: str | None = None,
    allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost", "[::1]"),
    admin: ActionTable | None = None,
) -> ASGIApp:
    """The ASGI app of `tidelake serve`: `services` (target prefix -> action table) and the test
    routes `admin` (name -> handler, at `POST /_tidelake/<name>`) before `fallback`, behind the
    Host check."""
    return TrustedHostMiddleware(
        _Dispatch(fallback, services, token, admin or {}), allowed_hosts=list(allowed_hosts)
    )


class _Dispatch:
    def __init__(
        self, fallback: ASGIApp, services: Mapping[str, ActionTable], token: str | None, admin: ActionTable
    ) -> None:
        self.fallback = fallback
        self.services = dict(services)
        self.token = token
        self.admin = dict(admin)

    def _table(self, scope: Scope) -> tuple[ActionTable, str] | None:
        if scope["type"] != "http":
            return None
        if scope["path"].startswith(ADMIN_PREFIX):
            if scope["method"] != "POST":
                return None
            return self.admin, scope["path"].removeprefix(ADMIN_PREFIX)
        if scope["method"] != "POST" or scope["path"] != "/":
            return None
        target = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-amz-target"), "")
        prefix, _, action = target.partition(".")
        table = self.services.get(prefix)
        return (table, action) if table is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        routed = self._table(scope)
        if routed is None:
            await self.fallback(scope, receive, send)
            return
        table, action = routed
        request = Request(scope, receive)
        response = await self._answer(request, table, action)
        await response(scope, receive, send)

    async def _answer(self, request: Request, table: ActionTable, action: str) -> Response:
        if not self._authorized(request.headers.get("authorization", "")):
            return error_response(
                AwsError(
                    "UnrecognizedClientException", "The security token included in the request is invalid."
                )
            )
        handler = table.get(action)
        if handler is None:
            return error_response(
                AwsError("UnknownOperationException", f"unknown or unsupported action {action!r}")
            )
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            msg = f"the request body is larger than {MAX_BODY_BYTES:,} bytes"
            return error_response(AwsError("InvalidArgumentException", msg))
        try:
            return json_response(await run_in_threadpool(handler, body))
        except AwsError as exc:
            return error_response(exc)
        except Exception:  # a bug must still answer in AWS's shape (the SDKs retry a 500)
            log.exception("the action %s failed", action)
            return error_response(AwsError("InternalFailureException", "Internal Service Failure", 500))

    def _authorized(self, authorization: str) -> bool:
        if self.token is None:
            return True
        return token_matches(authorization, self.token)
