"""Refuse writes that a web browser sends on behalf of another site (cross-site request forgery).

On loopback `tidelake serve` needs no token, so any web page the user visits could otherwise POST to
`http://127.0.0.1:8080/_tidelake/reset` or S3's `POST /tidelake-lake?delete` with a plain form or
`fetch(..., {mode: "no-cors"})`: such a "simple" request needs no CORS preflight, and the browser
sends it even though the page can never read the answer. The Host check does not help (the Host is
right), and no AWS SDK or CLI sends what a browser sends, so the rule is the browsers' own signal,
as Django's CSRF origin check and the Fetch Metadata guidance (https://web.dev/articles/fetch-metadata)
read it:

- a request that may change something (any method but GET, HEAD and OPTIONS) is refused with 403
  `AccessDeniedException` when its `Sec-Fetch-Site` is `cross-site` or `same-site`, or its `Origin`
  is not this server's own origin (`null` included: sandboxed frames and files);
- requests without either header (boto3, the AWS CLI, PyAthena, curl) and the console's own
  same-origin requests pass unchanged.

Reads stay as they are: the server sends no CORS headers, so another site's page cannot read an answer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from core.aws_json import AwsError, error_response

#: Methods that only read: a browser's cross-site GET cannot read the answer without CORS headers.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: `Sec-Fetch-Site` values of a request another site's page started.
FOREIGN_SITES = frozenset({b"cross-site", b"same-site"})


class CrossSiteWriteGuard:
    """ASGI middleware: `CrossSiteWriteGuard(app)` answers 403 to a browser's write from another
    origin (module docstring) and passes everything else to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            reason = foreign_write(dict(scope["headers"]))
            if reason is not None:
                refused = AwsError("AccessDeniedException", f"refused a cross-site write: {reason}", 403)
                await error_response(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def foreign_write(headers: dict[bytes, bytes]) -> str | None:
    """Why a write with these (lower-case) headers comes from another site's page, or None."""
    site = headers.get(b"sec-fetch-site")
    if site in FOREIGN_SITES:
        return f"Sec-Fetch-Site is {site.decode('latin-1')}"
    origin = headers.get(b"origin")
    if origin is None:
        return None
    text = origin.decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host:
        return f"Origin {text!r} is not this server ({host})"
    return None
