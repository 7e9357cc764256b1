"""Glue locations: `s3://<lake bucket>/<key>` URIs, the only places a Glue table may point at.

The lake is the one bucket (`core.lake.LAKE_BUCKET`, `tidelake-lake` unless the service is given
another name); a key is a path under the lake folder, read literally, as S3 reads it:
`s3://tidelake-lake/uploads/sales/` is `<lake>/uploads/sales/`.

Nothing may point out of the lake (queries/sandbox.py's rule: tables by name, files only inside the
lake), so a location is refused when:
- it is not an `s3://` URI (`file:///etc`, `hdfs://...`, `/etc`, a bare name): InvalidInputException;
- it names another bucket (`s3://other/x/`): AccessDeniedException, as AWS Lake Formation refuses a
  location the caller holds no data-location permission on;
- its key could step elsewhere once read as a path: a `.` or `..` segment, an empty segment (`//`),
  a backslash or a control character: InvalidInputException. A key is never percent-decoded (S3
  keys are literal): `%2e%2e` is a folder of that name, as the sinks name a partition of the
  value `..` (`sinks.prefixes.escape_value`), never a step up;
- it is in `_sinks/` (`core.lake.STATE_DIR`: the delivery streams' manifests and owner records,
  which S3 hides too) or has a name starting with `.` (a file being written):
  InvalidInputException;
- a folder on its way already exists as a symlink in the lake (the lake holds no links of its own):
  InvalidInputException.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from core.aws_json import AwsError
from core.lake import IN_PROGRESS_PREFIX, STATE_DIR

_SCHEME = "s3://"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def lake_uri(bucket: str, relative: str = "") -> str:
    """`s3://<bucket>/<relative>/`: the URI of a lake folder (`relative` is '/'-separated, may be '')."""
    key = relative.strip("/")
    return f"{_SCHEME}{bucket}/{key}/" if key else f"{_SCHEME}{bucket}/"


def lake_key(uri: str, bucket: str) -> str:
    """The key of a lake URI without its slashes at both ends ('' for the bucket itself), or an
    AwsError (see the module's rules)."""
    if not uri.startswith(_SCHEME):
        msg = (
            f"Location '{uri}' is not an s3:// URI; tidelake's tables live in the lake, s3://{bucket}/<path>"
        )
        raise AwsError("InvalidInputException", msg)
    named, _, key = uri[len(_SCHEME) :].partition("/")
    if named != bucket:
        msg = (
            f"Insufficient Lake Formation permission(s) on {uri}: the only data location is the lake, "
            f"s3://{bucket}/"
        )
        raise AwsError("AccessDeniedException", msg)
    key = key.rstrip("/")
    segments = key.split("/") if key else []
    if any(s in ("", ".", "..") for s in segments) or "\\" in key or _CONTROL.search(key):
        msg = f"Location '{uri}' is not a plain path in the lake (no '.', '..', '//', '\\' or control characters)"
        raise AwsError("InvalidInputException", msg)
    if segments and segments[0] == STATE_DIR:
        msg = f"Location '{uri}' is in {STATE_DIR}/, the delivery streams' own state; it holds no table"
        raise AwsError("InvalidInputException", msg)
    if any(s.startswith(IN_PROGRESS_PREFIX) for s in segments):
        msg = f"Location '{uri}' has a name starting with '.': in the lake such files are still being written"
        raise AwsError("InvalidInputException", msg)
    return key


def lake_path(uri: str, lake: Path, bucket: str) -> Path:
    """The lake folder (or file) a URI names, checked by `lake_key` and for links: no existing
    part of the path below the lake may be a symlink. The path need not exist."""
    key = lake_key(uri, bucket)
    path = lake
    for segment in key.split("/") if key else []:
        path = path / segment
        if os.path.islink(path):
            msg = f"Location '{uri}' passes through a symlink in the lake ({path}); tidelake reads only real folders"
            raise AwsError("InvalidInputException", msg)
    return path
