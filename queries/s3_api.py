"""S3's REST API over the lake: `aws s3 ls/cp/rm` and boto3's `s3` client work against tidelake.

    app = s3_app(settings, token, hosts)                    # S3 alone (its own port, AWS_ENDPOINT_URL_S3)
    app = s3_in_front(app, aws_endpoint(...), S3_BUCKETS)   # or S3 first on serve's one port

Two buckets (path-style `/<bucket>/<key>`, what botocore sends to any custom endpoint; a Host
`<bucket>.<known host>` also works, virtual-hosted style):
- `tidelake-lake` (`core.lake.LAKE_BUCKET`): the lake folder. Read everything but `_sinks/`; write
  and delete outside the prefixes that delivery streams own (`queries/s3_store.py`).
- `tidelake-query-results` (`RESULTS_BUCKET`): Athena's query results (`<id>.csv`,
  `<id>.csv.metadata`; nothing else of that folder), read-only.

Actions (botocore's S3 model, `botocore/data/s3/2006-03-01/service-2.json`): ListBuckets,
HeadBucket, GetBucketLocation, GetBucketVersioning (never enabled: an empty configuration),
ListObjectVersions (each object once, VersionId `null`; `versionId=null` elsewhere is no version),
GetObjectTagging (an empty TagSet: tidelake keeps no tags), GetBucketTagging (NoSuchTagSet),
CreateBucket (an existing bucket: BucketAlreadyOwnedByYou; a new name: AccessDenied, the buckets are
fixed), DeleteBucket (BucketNotEmpty, else AccessDenied), ListObjectsV2, ListObjects, GetObject (Range, If-Match,
If-None-Match, If-Modified-Since, If-Unmodified-Since), HeadObject, PutObject (Content-MD5 and
x-amz-checksum-crc32 checked), CopyObject, DeleteObject, DeleteObjects, CreateMultipartUpload,
UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts. Anything else is
`NotImplemented` (501). Errors are S3's XML (`queries/s3_xml.py`).

The rules of `tidelake serve` hold: only a known Host is served (400 otherwise, as Starlette's
TrustedHostMiddleware answers); with a token, a request carries it as its access key id (SigV4's
or SigV2's `Authorization`, a presigned URL's `X-Amz-Credential` or `AWSAccessKeyId`) or as
`Bearer <token>`, else `InvalidAccessKeyId` (403). No signature is checked.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import email.utils
import mimetypes
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.aws_json import read_capped, token_matches
from core.lake import LAKE_BUCKET
from core.settings import Settings
from queries.s3_store import (
    DEFAULT_MAX_STAGED_BYTES,
    MAX_LIST_KEYS,
    BodyChecks,
    Bucket,
    BucketStore,
    ETags,
    ListPage,
    ObjectInfo,
    Uploads,
    check_key,
    md5_etag,
)
from queries.s3_xml import (
    MAX_XML_BODY_BYTES,
    S3Error,
    child,
    children,
    element,
    error_response,
    parse_body,
    text_of,
    xml_response,
)

#: The bucket of Athena's query results (Settings.query_results_dir()), read-only.
RESULTS_BUCKET = "tidelake-query-results"
#: The objects of the results bucket: Athena's `<id>.csv` and `<id>.csv.metadata` (queries/results.py)
#: and CREATE TABLE AS results (`<folder>/<file>.parquet`, `<folder>-manifest.csv`, queries/athena_ctas.py),
#: not the other files of that folder (the Athena service's SQLite state).
RESULT_OBJECTS = re.compile(
    r"[^/]+\.csv(\.metadata)?|(tables/)?[^/]+-manifest\.csv|(tables/)?[^/.]+/[^/]+\.parquet"
)
#: What a client may delete from the results bucket: CTAS results once read (awswrangler deletes the
#: files, the manifest and `<folder>.metadata`), never the results of queries.
CTAS_OBJECTS = re.compile(
    r"(tables/)?[^/.]+/[^/]+\.parquet|(tables/)?[^/.]+-manifest\.csv|(tables/)?[^/.]+\.metadata"
)
#: The buckets tidelake serves by default.
S3_BUCKETS = (LAKE_BUCKET, RESULTS_BUCKET)
#: S3's largest single PUT (5 GiB).
MAX_PUT_BYTES = 5 * 1024**3
_OWNER = {"ID": "tidelake", "DisplayName": "tidelake"}
_SIGV4_S3_SCOPE = "/s3/aws4_request"
_CREDENTIAL = re.compile(r"^([^/]+)/")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_WRITE_BATCH = 1024 * 1024


class S3Service:
    """The buckets, their stores and the multipart uploads."""

    def __init__(
        self, buckets: Sequence[Bucket], state_dir: Path, max_staged_bytes: int = DEFAULT_MAX_STAGED_BYTES
    ):
        etags = ETags(state_dir)
        self.stores = {b.name: BucketStore(b, etags) for b in buckets}
        self.uploads = Uploads(state_dir, max_staged_bytes)

    def store(self, bucket: str) -> BucketStore:
        store = self.stores.get(bucket)
        if store is None:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist.", 404, bucket=bucket)
        return store


def s3_app(
    settings: Settings,
    token: str | None = None,
    hosts: Sequence[str] = ("127.0.0.1", "localhost", "[::1]"),
    *,
    lake_bucket: str = LAKE_BUCKET,
    results_bucket: str = RESULTS_BUCKET,
    max_staged_bytes: int = DEFAULT_MAX_STAGED_BYTES,
) -> ASGIApp:
    """The S3 face of `settings`' lake (bucket `lake_bucket`) and query results (`results_bucket`),
    with multipart uploads staged in `<runtime.state_dir>/s3/`."""
    buckets = [
        Bucket(lake_bucket, settings.lake.root, writable=True, guarded=True),
        Bucket(
            results_bucket,
            settings.query_results_dir(),
            writable=False,
            only=RESULT_OBJECTS,
            deletable=CTAS_OBJECTS,
        ),
    ]
    return S3App(S3Service(buckets, settings.runtime.state_dir / "s3", max_staged_bytes), token, hosts)


def s3_in_front(s3: ASGIApp, fallback: ASGIApp, buckets: Sequence[str] = S3_BUCKETS) -> ASGIApp:
    """`s3` answers S3's requests, `fallback` the rest (see `is_s3_request`)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        target = s3 if scope["type"] == "http" and is_s3_request(scope, buckets) else fallback
        await target(scope, receive, send)

    return app


def is_s3_request(scope: Scope, buckets: Sequence[str] = S3_BUCKETS) -> bool:
    """Whether a request is S3's: signed for service `s3` (SigV4 credential scope `/s3/aws4_request`
    in `Authorization` or a presigned URL's `X-Amz-Credential`), or addressed to a bucket (the path's
    first name, or a Host `<bucket>.<name>`). Athena's, Kinesis' and the query app's are not."""
    headers = dict(scope["headers"])
    if _SIGV4_S3_SCOPE in headers.get(b"authorization", b"").decode("latin-1"):
        return True
    query = scope.get("query_string", b"").decode("latin-1")
    if "X-Amz-Credential=" in query and _SIGV4_S3_SCOPE in unquote(query):
        return True
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if any(host.startswith(f"{b}.") for b in buckets):
        return True
    first = scope["path"].lstrip("/").split("/", 1)[0]
    return first in buckets


class S3App:
    """The ASGI app: Host and token checks, then one action per request."""

    def __init__(self, service: S3Service, token: str | None, hosts: Sequence[str]) -> None:
        self.service = service
        self.token = token
        self.hosts = [h.lower() for h in hosts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        head = scope["method"] == "HEAD"
        host_bucket = self._host_bucket(request.headers.get("host", ""))
        if host_bucket is None:
            await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
            return
        try:
            if "content-length" in request.headers and "transfer-encoding" in request.headers:
                # RFC 9112 section 6.1: a request with both may be read two ways (request smuggling)
                raise S3Error("InvalidRequest", "A request cannot have both Content-Length and Transfer-Encoding.")  # fmt: skip
            if not self._authorized(request):
                raise S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403)  # fmt: skip
            response = await self._route(request, host_bucket or None)  # "" (a known host): path-style
        except S3Error as exc:
            response = error_response(exc, head=head)
            if scope["method"] in ("PUT", "POST"):
                # the body may be unread: close the connection rather than leave it for the next request
                response.headers["Connection"] = "close"
        await response(scope, receive, send)

    def _host_bucket(self, host_header: str) -> str | None:
        """ "" for a known host, the bucket for `<bucket>.<known host>`, None for any other."""
        host = host_header.lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name in self.hosts:
            return ""
        for bucket in self.service.stores:
            rest = name.removeprefix(f"{bucket}.")
            if rest != name and rest in self.hosts:
                return bucket
        return None

    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        if token_matches(request.headers.get("authorization"), self.token):
            return True
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("AWS ") and authorization[4:].partition(":")[0] == self.token:
            return True  # SigV2: `AWS <key id>:<signature>`
        if request.query_params.get("AWSAccessKeyId") == self.token:
            return True  # a SigV2 presigned URL (boto3's generate_presigned_url for s3)
        found = _CREDENTIAL.match(request.query_params.get("X-Amz-Credential", ""))
        return bool(found and found.group(1) == self.token)  # a SigV4 presigned URL

    async def _route(self, request: Request, host_bucket: str | None) -> Response:
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        try:
            path = unquote(raw.split(b"?", 1)[0].decode("ascii"), errors="strict")
        except UnicodeDecodeError as exc:
            raise S3Error("InvalidURI", "Couldn't parse the specified URI.") from exc
        path = path[1:] if path.startswith("/") else path
        if host_bucket:
            bucket, key = host_bucket, path
        else:
            bucket, _, key = path.partition("/")
        query = {k: v[-1] for k, v in parse_qs(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True).items()}  # fmt: skip
        method = request.method
        if not bucket:
            if method == "GET":
                return self.list_buckets()
            raise _not_implemented(method, "/")
        if method == "PUT" and not key and not query and bucket not in self.service.stores:
            msg = (
                f"Access Denied: tidelake's buckets are fixed ({', '.join(self.service.stores)}); "
                "CreateBucket cannot make another. Write under a prefix of the lake bucket instead."
            )
            raise S3Error("AccessDenied", msg, 403, bucket=bucket)
        if query.get("versionId") == "null":
            del query["versionId"]  # S3's version id of every object in a bucket without versioning
        store = self.service.store(bucket)
        if not key:
            return await self._bucket_action(request, store, method, query)
        return await self._object_action(request, store, key, method, query)

    # -- buckets ----------------------------------------------------------------------------------
    def list_buckets(self) -> Response:
        root = element("ListAllMyBucketsResult")
        owner = child(root, "Owner")
        child(owner, "ID", _OWNER["ID"])
        child(owner, "DisplayName", _OWNER["DisplayName"])
        listed = child(root, "Buckets")
        for name, store in self.service.stores.items():
            entry = child(listed, "Bucket")
            child(entry, "Name", name)
            try:
                created = store.root.stat().st_mtime_ns
            except OSError:
                created = 0
            child(entry, "CreationDate", _iso(created))
        return xml_response(root)

    async def _bucket_action(self, request: Request, store: BucketStore, method: str, query: dict[str, str]) -> Response:  # fmt: skip
        if method == "HEAD":
            store.check_bucket()
            return Response(status_code=200, headers={"x-amz-bucket-region": "us-east-1"})
        if method == "GET" and "location" in query:
            store.check_bucket()
            return xml_response(element("LocationConstraint"))
        if method == "GET" and query.get("list-type") == "2":
            return await run_in_threadpool(self.list_objects_v2, store, query)
        if method == "GET" and not (
            set(query) - {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}
        ):
            return await run_in_threadpool(self.list_objects_v1, store, query)
        if method == "POST" and "delete" in query:
            body = await read_capped(request, MAX_XML_BODY_BYTES)
            if body is None:
                raise S3Error("MalformedXML", "The request body is too large.")
            return await run_in_threadpool(self.delete_objects, store, body)
        if method == "GET" and "versioning" in query:
            store.check_bucket()  # never versioned: S3 answers an empty configuration
            return xml_response(element("VersioningConfiguration"))
        if method == "GET" and "versions" in query:
            return await run_in_threadpool(self.list_object_versions, store, query)
        if method == "GET" and "tagging" in query:
            store.check_bucket()
            raise S3Error("NoSuchTagSet", "The TagSet does not exist", 404, bucket=store.bucket.name)
        if method == "DELETE" and not query:
            store.check_bucket()
            if store.list("", "", "", 1).contents:
                raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409, bucket=store.bucket.name)  # fmt: skip
            msg = f"Access Denied: tidelake's buckets are fixed; {store.bucket.name} cannot be deleted."
            raise S3Error("AccessDenied", msg, 403, bucket=store.bucket.name)
        if method == "PUT" and not query:
            raise S3Error("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it; tidelake's buckets are fixed.", 409, bucket=store.bucket.name)  # fmt: skip
        raise _not_implemented(method, f"/{store.bucket.name}?{'&'.join(query)}")

    def list_objects_v2(self, store: BucketStore, query: dict[str, str]) -> Response:
        store.check_bucket()
        encode = _encoder(query)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = _max_keys(query)
        start_after = query.get("start-after", "")
        token = query.get("continuation-token")
        resume = start_after
        if token is not None:
            resume = max(resume, _decode_token(token))
        page = store.list(prefix, delimiter, resume, max_keys)
        root = element("ListBucketResult")
        child(root, "Name", store.bucket.name)
        child(root, "Prefix", encode(prefix))
        if delimiter:
            child(root, "Delimiter", encode(delimiter))
        child(root, "MaxKeys", max_keys)
        if "encoding-type" in query:
            child(root, "EncodingType", "url")
        child(root, "KeyCount", len(page.contents) + len(page.prefixes))
        child(root, "IsTruncated", page.truncated)
        if token is not None:
            child(root, "ContinuationToken", token)
        if page.truncated and page.next_marker is not None:
            child(root, "NextContinuationToken", _encode_token(page.next_marker))
        if start_after:
            child(root, "StartAfter", encode(start_after))
        _listing(root, page, encode)
        return xml_response(root)

    def list_object_versions(self, store: BucketStore, query: dict[str, str]) -> Response:
        """ListObjectVersions of a bucket never versioned: each object once, VersionId `null`, latest."""
        store.check_bucket()
        encode = _encoder(query)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        marker = query.get("key-marker", "")
        if query.get("version-id-marker") and not marker:
            raise S3Error("InvalidArgument", "A version-id marker cannot be specified without a key marker.")
        max_keys = _max_keys(query)
        page = store.list(prefix, delimiter, marker, max_keys)
        root = element("ListVersionsResult")
        child(root, "Name", store.bucket.name)
        child(root, "Prefix", encode(prefix))
        child(root, "KeyMarker", encode(marker))
        child(root, "VersionIdMarker", query.get("version-id-marker", ""))
        if page.truncated and page.next_marker is not None:
            child(root, "NextKeyMarker", encode(page.next_marker))
            child(root, "NextVersionIdMarker", "null")
        child(root, "MaxKeys", max_keys)
        if delimiter:
            child(root, "Delimiter", encode(delimiter))
        if "encoding-type" in query:
            child(root, "EncodingType", "url")
        child(root, "IsTruncated", page.truncated)
        for info in page.contents:
            entry = child(root, "Version")
            child(entry, "Key", encode(info.key))
            child(entry, "VersionId", "null")
            child(entry, "IsLatest", True)
            child(entry, "LastModified", _iso(info.mtime_ns))
            child(entry, "ETag", info.etag)
            child(entry, "Size", info.size)
            child(entry, "StorageClass", "STANDARD")
            owner = child(entry, "Owner")
            child(owner, "ID", _OWNER["ID"])
            child(owner, "DisplayName", _OWNER["DisplayName"])
        for common in page.prefixes:
            child(child(root, "CommonPrefixes"), "Prefix", encode(common))
        return xml_response(root)

    def list_objects_v1(self, store: BucketStore, query: dict[str, str]) -> Response:
        store.check_bucket()
        encode = _encoder(query)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        marker = query.get("marker", "")
        max_keys = _max_keys(query)
        page = store.list(prefix, delimiter, marker, max_keys)
        root = element("ListBucketResult")
        child(root, "Name", store.bucket.name)
        child(root, "Prefix", encode(prefix))
        child(root, "Marker", encode(marker))
        if page.truncated and page.next_marker is not None:
            child(root, "NextMarker", encode(page.next_marker))
        child(root, "MaxKeys", max_keys)
        if delimiter:
            child(root, "Delimiter", encode(delimiter))
        if "encoding-type" in query:
            child(root, "EncodingType", "url")
        child(root, "IsTruncated", page.truncated)
        _listing(root, page, encode)
        return xml_response(root)

    def delete_objects(self, store: BucketStore, body: bytes) -> Response:
        request = parse_body(body, "Delete")
        quiet = (text_of(request, "Quiet") or "").strip().lower() == "true"
        keys = [text_of(obj, "Key") or "" for obj in children(request, "Object")]
        if not keys or len(keys) > MAX_LIST_KEYS:
            raise S3Error("MalformedXML", f"A Delete request names 1 to {MAX_LIST_KEYS} objects.")
        root = element("DeleteResult")
        for key in keys:
            try:
                store.delete(key)
            except S3Error as exc:
                failed = child(root, "Error")
                child(failed, "Key", key)
                child(failed, "Code", exc.code)
                child(failed, "Message", exc.text)
                continue
            if not quiet:
                child(child(root, "Deleted"), "Key", key)
        return xml_response(root)

    # -- objects ----------------------------------------------------------------------------------
    async def _object_action(self, request: Request, store: BucketStore, key: str, method: str, query: dict[str, str]) -> Response:  # fmt: skip
        uploads = self.service.uploads
        if method == "GET" and "uploadId" in query:
            return await run_in_threadpool(self.list_parts, store, key, query)
        if method in ("GET", "HEAD") and not _subresource(query):
            return await run_in_threadpool(self.get_object, store, key, request, method == "HEAD")
        if method == "GET" and set(query) == {"tagging"}:
            await run_in_threadpool(store.head, key)  # NoSuchKey for a missing object, as S3
            root = element("Tagging")
            child(root, "TagSet")
            return xml_response(root)  # tidelake keeps no tags, so an object has none
        if method == "PUT" and "uploadId" in query and "partNumber" in query:
            if "x-amz-copy-source" in request.headers:
                raise _not_implemented("UploadPartCopy", key)
            return await self.upload_part(request, store, key, query)
        if method == "PUT" and not _subresource(query):
            if "x-amz-copy-source" in request.headers:
                return await run_in_threadpool(
                    self.copy_object, store, key, request.headers["x-amz-copy-source"]
                )
            return await self.put_object(request, store, key)
        if method == "POST" and "uploads" in query:
            store.check_writable(key)
            upload_id = await run_in_threadpool(uploads.create, store.bucket.name, key)
            root = element("InitiateMultipartUploadResult")
            child(root, "Bucket", store.bucket.name)
            child(root, "Key", key)
            child(root, "UploadId", upload_id)
            return xml_response(root)
        if method == "POST" and "uploadId" in query:
            body = await read_capped(request, MAX_XML_BODY_BYTES)
            if body is None:
                raise S3Error("MalformedXML", "The request body is too large.")
            return await run_in_threadpool(self.complete_upload, store, key, query["uploadId"], body, request)
        if method == "DELETE" and "uploadId" in query:
            check_key(key)
            await run_in_threadpool(uploads.abort, store.bucket.name, key, query["uploadId"])
            return Response(status_code=204)
        if method == "DELETE" and not _subresource(query):
            await run_in_threadpool(store.delete, key)
            return Response(status_code=204)
        raise _not_implemented(method, f"/{store.bucket.name}/{key}?{'&'.join(query)}")

    def get_object(self, store: BucketStore, key: str, request: Request, head: bool) -> Response:
        _check_response_overrides(request.query_params)
        fd, info = store.open(key)
        try:
            headers = _object_headers(info, key, request.query_params.get("response-content-type"))
            status = _preconditions(info, request.headers)
            if status is not None:
                os.close(fd)
                if status == 304:
                    return Response(status_code=304, headers={k: v for k, v in headers.items() if k in ("ETag", "Last-Modified")})  # fmt: skip
                raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)  # fmt: skip
            start, end = 0, info.size - 1
            status = 200
            wanted = request.headers.get("range")
            if wanted:
                span = _parse_range(wanted, info.size)
                if span is not None:
                    start, end = span
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
            length = max(end - start + 1, 0)
            headers["Content-Length"] = str(length)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        if head:
            os.close(fd)
            return Response(status_code=status, headers=headers)
        return _ObjectResponse(_Span(fd, start, length), status_code=status, headers=headers)

    async def put_object(self, request: Request, store: BucketStore, key: str) -> Response:
        _refuse_streaming_payload(request)
        checks = _body_checks(request)
        pending = await run_in_threadpool(store.begin_put, key)
        try:
            await _stream_into(request, pending, checks, MAX_PUT_BYTES)
            checks.verify()
            info = await run_in_threadpool(pending.commit, md5_etag(checks.md5.digest()))
        except BaseException:
            await run_in_threadpool(store.abandon, pending, key)
            raise
        return Response(status_code=200, headers={"ETag": info.etag})

    def copy_object(self, store: BucketStore, key: str, source: str) -> Response:
        source_bucket, _, source_key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
        source_store = self.service.store(source_bucket)
        fd, _ = source_store.open(source_key)
        try:
            pending = store.begin_put(key)
            try:
                checks = BodyChecks()
                for chunk in _read_span(fd, 0, os.fstat(fd).st_size, close=False):
                    checks.update(chunk)
                    pending.write(chunk)
                info = pending.commit(md5_etag(checks.md5.digest()))
            except BaseException:
                store.abandon(pending, key)
                raise
        finally:
            os.close(fd)
        root = element("CopyObjectResult")
        child(root, "LastModified", _iso(info.mtime_ns))
        child(root, "ETag", info.etag)
        return xml_response(root)

    async def upload_part(
        self, request: Request, store: BucketStore, key: str, query: dict[str, str]
    ) -> Response:
        _refuse_streaming_payload(request)
        try:
            number = int(query["partNumber"])
        except ValueError as exc:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive.") from exc  # fmt: skip
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
        size = int(declared)
        if size > MAX_PUT_BYTES:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size (5 GiB a part).")  # fmt: skip
        uploads = self.service.uploads
        checks = _body_checks(request)
        with uploads.reserve(size):
            pending = await run_in_threadpool(uploads.put_part, store.bucket.name, key, query.get("uploadId", ""), number)  # fmt: skip
            try:
                await _stream_into(request, pending, checks, size)
                checks.verify()
                etag = await run_in_threadpool(pending.commit, checks.md5.hexdigest())
            except BaseException:
                await run_in_threadpool(pending.discard)
                raise
        return Response(status_code=200, headers={"ETag": etag})

    def complete_upload(self, store: BucketStore, key: str, upload_id: str, body: bytes, request: Request) -> Response:  # fmt: skip
        parsed = parse_body(body, "CompleteMultipartUpload")
        chosen = []
        for part in children(parsed, "Part"):
            try:
                chosen.append((int(text_of(part, "PartNumber") or ""), (text_of(part, "ETag") or "").strip()))
            except ValueError as exc:
                raise S3Error("MalformedXML", "A Part's PartNumber is not a number.") from exc
        info = self.service.uploads.complete(store, key, upload_id, chosen)
        root = element("CompleteMultipartUploadResult")
        child(root, "Location", f"{request.base_url}{store.bucket.name}/{quote(key)}")
        child(root, "Bucket", store.bucket.name)
        child(root, "Key", key)
        child(root, "ETag", info.etag)
        return xml_response(root)

    def list_parts(self, store: BucketStore, key: str, query: dict[str, str]) -> Response:
        upload_id = query.get("uploadId", "")
        check_key(key)
        try:
            marker = int(query.get("part-number-marker") or 0)
            max_parts = min(int(query.get("max-parts") or 1000), 1000)
        except ValueError as exc:
            raise S3Error("InvalidArgument", "part-number-marker and max-parts must be integers.") from exc
        parts = [
            p for p in self.service.uploads.parts(store.bucket.name, key, upload_id) if p.number > marker
        ]
        shown, truncated = parts[:max_parts], len(parts) > max_parts
        root = element("ListPartsResult")
        child(root, "Bucket", store.bucket.name)
        child(root, "Key", key)
        child(root, "UploadId", upload_id)
        child(root, "PartNumberMarker", marker)
        child(root, "NextPartNumberMarker", shown[-1].number if shown else 0)
        child(root, "MaxParts", max_parts)
        child(root, "IsTruncated", truncated)
        for part in shown:
            entry = child(root, "Part")
            child(entry, "PartNumber", part.number)
            child(entry, "LastModified", _iso(part.mtime_ns))
            child(entry, "ETag", part.etag)
            child(entry, "Size", part.size)
        child(root, "StorageClass", "STANDARD")
        return xml_response(root)


# -- helpers ------------------------------------------------------------------------------------
def _not_implemented(what: str, where: str) -> S3Error:
    return S3Error("NotImplemented", f"tidelake's S3 does not implement this request ({what} {where}).", 501)


#: Query parameters that name a sub-resource (ACLs, tagging, versions ...), which tidelake does not keep.
_SUBRESOURCES = frozenset(
    {"acl", "tagging", "versions", "versionId", "legal-hold", "retention", "torrent", "attributes",
     "restore", "select", "policy", "cors", "lifecycle", "uploads", "uploadId", "partNumber"}
)  # fmt: skip


def _subresource(query: Mapping[str, str]) -> bool:
    return bool(set(query) & _SUBRESOURCES)


def _iso(mtime_ns: int) -> str:
    moment = dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _encoder(query: Mapping[str, str]) -> Any:
    kind = query.get("encoding-type")
    if kind is None:
        return lambda text: text
    if kind != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return lambda text: quote(text, safe="/")


def _max_keys(query: Mapping[str, str]) -> int:
    text = query.get("max-keys", str(MAX_LIST_KEYS))
    if not text.isdigit():
        raise S3Error("InvalidArgument", "Provided max-keys not an integer or within integer range")
    return min(int(text), MAX_LIST_KEYS)


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from exc


def _listing(root: Any, page: ListPage, encode: Any) -> None:
    for info in page.contents:
        entry = child(root, "Contents")
        child(entry, "Key", encode(info.key))
        child(entry, "LastModified", _iso(info.mtime_ns))
        child(entry, "ETag", info.etag)
        child(entry, "Size", info.size)
        child(entry, "StorageClass", "STANDARD")
    for prefix in page.prefixes:
        child(child(root, "CommonPrefixes"), "Prefix", encode(prefix))


def _object_headers(info: ObjectInfo, key: str, content_type: str | None) -> dict[str, str]:
    guessed = mimetypes.guess_type(key.rsplit("/", 1)[-1])[0]
    return {
        "ETag": info.etag,
        "Last-Modified": email.utils.format_datetime(info.last_modified.replace(microsecond=0), usegmt=True),
        "Accept-Ranges": "bytes",
        "Content-Type": content_type or guessed or "binary/octet-stream",
    }


def _matches(etag: str, header: str) -> bool:
    wanted = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    return "*" in wanted or etag.strip('"') in wanted


def _http_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def _preconditions(info: ObjectInfo, headers: Mapping[str, str]) -> int | None:
    """412, 304 or None, by RFC 9110 section 13.2.2's order (S3's GetObject page says the same)."""
    modified = info.last_modified.replace(microsecond=0)
    if (if_match := headers.get("if-match")) is not None:
        if not _matches(info.etag, if_match):
            return 412
    elif (since := _http_date(headers.get("if-unmodified-since"))) is not None and modified > since:
        return 412
    if (if_none := headers.get("if-none-match")) is not None:
        if _matches(info.etag, if_none):
            return 304
    elif (since := _http_date(headers.get("if-modified-since"))) is not None and modified <= since:
        return 304
    return None


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`(first, last)` byte of a single `bytes=` range (RFC 9110 section 14.1.2), None to send the
    whole object (a multi-range or unparsable header, as S3 does), `InvalidRange` (416) when it
    starts past the end."""
    found = _RANGE.match(header.strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise S3Error("InvalidRange", "The requested range is not satisfiable", 416)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise S3Error("InvalidRange", "The requested range is not satisfiable", 416)
    return start, end


def _read_span(fd: int, start: int, length: int, *, close: bool = True) -> Iterator[bytes]:
    try:
        offset, left = start, length
        while left > 0:
            chunk = os.pread(fd, min(left, 256 * 1024), offset)
            if not chunk:
                break
            offset += len(chunk)
            left -= len(chunk)
            yield chunk
    finally:
        if close:
            os.close(fd)


class _Span:
    """`length` bytes of the open file `fd` from `start`, read in chunks; `close` closes the fd
    once, whether or not the chunks were read (a lock keeps it from closing under a read)."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self.fd: int | None = fd
        self.start, self.length = start, length
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        offset, left = self.start, self.length
        while left > 0:
            with self._lock:
                if self.fd is None:
                    return
                chunk = os.pread(self.fd, min(left, 256 * 1024), offset)
            if not chunk:
                return
            offset += len(chunk)
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        with self._lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class _ObjectResponse(StreamingResponse):
    """An object's bytes; its file is closed however the response ends, even when it never starts
    (a header the server refuses to send, a client gone before the first byte)."""

    def __init__(self, span: _Span, status_code: int, headers: Mapping[str, str]) -> None:
        super().__init__(iter(span), status_code=status_code, headers=headers)
        self.span = span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.span.close()


#: What a header value made from the query string may hold: visible ASCII, with single spaces or
#: tabs inside (no CR/LF or other control characters, nothing that is not latin-1).
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*")


def _check_response_overrides(query: Mapping[str, str]) -> None:
    """`InvalidArgument` (400) for a `response-*` override that cannot be a header value: it is
    refused before the object is opened, never sent half-way."""
    for name, value in query.items():
        if name.lower().startswith("response-") and value and not _HEADER_VALUE.fullmatch(value):
            msg = (
                f"Header value of {name} cannot hold control characters, line breaks or non-ASCII characters."
            )
            raise S3Error("InvalidArgument", msg)


def _body_checks(request: Request) -> BodyChecks:
    return BodyChecks(request.headers.get("content-md5"), request.headers.get("x-amz-checksum-crc32"))


def _refuse_streaming_payload(request: Request) -> None:
    """aws-chunked bodies (`x-amz-content-sha256: STREAMING-...`, sent over HTTPS) are not decoded."""
    if request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        raise _not_implemented("aws-chunked payload", "(send it unsigned-payload or signed, not streaming)")


async def _stream_into(request: Request, pending: Any, checks: BodyChecks, limit: int) -> None:
    """The request body into `pending` (written from a worker thread, a MiB at a time)."""
    batch: list[bytes] = []
    held = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        checks.update(chunk)
        if checks.size > limit:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        batch.append(chunk)
        held += len(chunk)
        if held >= _WRITE_BATCH:
            await run_in_threadpool(pending.write, b"".join(batch))
            batch, held = [], 0
    if batch:
        await run_in_threadpool(pending.write, b"".join(batch))
