"""S3 over the lake (queries/s3_api.py), driven by boto3's `s3` client and the AWS CLI unchanged.

The server is `s3_in_front(s3_app(...), stand-in query app)`, as `tidelake serve` mounts it, run by
uvicorn in a thread on a free port, over a real lake folder: Parquet files written by pyarrow,
an owner record written by sinks/ownership.py's own `DatasetClaims`, a delivery stream's manifest
under `_sinks/`, links that point out of the lake. Each test writes under its own prefix.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import io
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from core.settings import load_settings
from queries.api import create_app
from queries.engine import Engine, Limits
from queries.results import ResultStore
from queries.s3_api import RESULTS_BUCKET, _ObjectResponse, _Span, s3_app, s3_in_front
from queries.service import QueryService
from sinks.ownership import DatasetClaims
from tests.aws_endpoints import AWS_CLI, aws_cli_env, endpoint_in_thread, stand_in_query_app
from tidelake.aws_endpoint import aws_endpoint

LAKE = "tidelake-lake"
TOKEN = "s3-test-token"
MIB = 1024 * 1024
PARQUET_KEYS = [
    "clickstream_events/dt=2019-01-22/hour=00/clickstream.events+0+00000000000000000000.parquet",
    "clickstream_events/dt=2019-01-22/hour=00/clickstream.events+1+00000000000000000000.parquet",
    "clickstream_events/dt=2019-01-22/hour=01/clickstream.events+0+00000000000000000005.parquet",
]
SECRET = b"outside the lake\n"


def _parquet(rows: int, first: int) -> bytes:
    table = pa.table(
        {
            "event_id": [f"e{first + i}" for i in range(rows)],
            "status": pa.array([200 + i for i in range(rows)], pa.int32()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    base = tmp_path_factory.mktemp("s3")
    lake, results, state, outside = base / "lake", base / "results", base / "state", base / "outside"
    for folder in (lake, results, state, outside):
        folder.mkdir()
    files = {}
    for index, key in enumerate(PARQUET_KEYS):
        data = _parquet(5 + index, 10 * index)
        (lake / key).parent.mkdir(parents=True, exist_ok=True)
        (lake / key).write_bytes(data)
        files[key] = data
    # what the lake also holds and S3 must not show: a write in progress, the sinks' state, links out
    (lake / "clickstream_events/dt=2019-01-22/hour=00/.clickstream.events+2+00000000000000000000.parquet.tmp").write_bytes(b"half")  # fmt: skip
    (lake / "_sinks/clickstream-events").mkdir(parents=True)
    (lake / "_sinks/clickstream-events/manifest.json").write_text("{}")
    DatasetClaims(lake, "clickstream-events", "tidelake-sink-clickstream-events").claim("clickstream_events")
    DatasetClaims(lake, "dead-letters", "tidelake-sink-dead-letters", dead_letters=True).claim(
        "clickstream_events"
    )
    (lake / "_errors/clickstream_events/processing-failed").mkdir(parents=True)
    (lake / "_errors/clickstream_events/processing-failed/x.parquet").write_bytes(_parquet(1, 0))
    (outside / "secret.txt").write_bytes(SECRET)
    (lake / "free").mkdir()
    (lake / "free/link-dir").symlink_to(outside, target_is_directory=True)
    (lake / "free/link-file").symlink_to(outside / "secret.txt")
    (lake / "free/link-up").symlink_to("..", target_is_directory=True)
    (lake / "outlink").symlink_to(outside, target_is_directory=True)  # a "dataset" that is a link out
    os.mkfifo(lake / "free/fifo")
    # 2,500 keys for paging, in 25 folders, and names whose byte order is not the folders' order
    for folder in range(25):
        (lake / f"paging/f{folder:02d}").mkdir(parents=True)
        for i in range(100):
            (lake / f"paging/f{folder:02d}/k{i:03d}").write_bytes(b"%d" % (folder * 100 + i))
    for name in ("order/a/x", "order/a-b", "order/a0", "order/é", "order/z/y", "order/Z"):
        (lake / name).parent.mkdir(parents=True, exist_ok=True)
        (lake / name).write_bytes(name.encode())
    (results / "q1.csv").write_text('"page","views"\n"/","3"\n')
    (results / "q1.csv.metadata").write_text("{}")
    (results / "athena-state.sqlite3").write_bytes(
        b"SQLite format 3\x00"
    )  # the Athena service's, not a result
    settings = load_settings(
        lake={"root": lake}, runtime={"state_dir": state}, query={"results_dir": results}
    )
    app = s3_in_front(s3_app(settings, TOKEN), stand_in_query_app)
    with endpoint_in_thread(app) as url:
        yield {"url": url, "lake": lake, "results": results, "state": state, "outside": outside, "files": files,
               "settings": settings}  # fmt: skip


def client(url: str, key: str = TOKEN, **config: object):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, **config),
    )


@pytest.fixture(scope="module")
def s3(world: dict[str, object]):
    return client(str(world["url"]))


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def raw(url: str, method: str, path: bytes, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    """One request with `path` sent byte for byte (no client normalises or encodes it)."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        conn.putrequest(
            method, path.decode("latin-1"), skip_host="Host" in (headers or {}), skip_accept_encoding=True
        )
        sent = {"Authorization": f"AWS4-HMAC-SHA256 Credential={TOKEN}/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0", "Content-Length": str(len(body)), **(headers or {})}  # fmt: skip
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


# -- buckets and listings ---------------------------------------------------------------------------
def test_list_buckets_names_the_lake_and_the_query_results(s3) -> None:
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == [LAKE, RESULTS_BUCKET]
    assert s3.head_bucket(Bucket=LAKE)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=LAKE).get("LocationConstraint") is None
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="no-such-bucket")
    assert code_of(exc) == ("NoSuchBucket", 404)


def test_list_objects_v2_gives_each_parquet_file_with_size_and_md5_etag(s3, world) -> None:
    files = world["files"]
    listed = s3.list_objects_v2(Bucket=LAKE, Prefix="clickstream_events/")
    assert [o["Key"] for o in listed["Contents"]] == PARQUET_KEYS
    assert [o["Size"] for o in listed["Contents"]] == [len(files[k]) for k in PARQUET_KEYS]
    assert [o["ETag"] for o in listed["Contents"]] == [md5(files[k]) for k in PARQUET_KEYS]
    assert (listed["KeyCount"], listed["IsTruncated"], listed["MaxKeys"]) == (3, False, 1000)
    mtime = (world["lake"] / PARQUET_KEYS[0]).stat().st_mtime
    assert listed["Contents"][0]["LastModified"].timestamp() == pytest.approx(mtime, abs=0.001)


def test_delimiter_rolls_folders_into_common_prefixes_and_hides_the_sinks_state(s3) -> None:
    top = s3.list_objects_v2(Bucket=LAKE, Delimiter="/")
    prefixes = [p["Prefix"] for p in top["CommonPrefixes"]]  # other tests add their own prefixes
    assert {"_errors/", "clickstream_events/", "order/", "paging/"} <= set(prefixes)
    assert "_sinks/" not in prefixes  # the sinks' state is hidden
    assert "free/" not in prefixes  # it holds links and a FIFO, no object
    assert "outlink/" not in prefixes  # a link
    assert prefixes == sorted(prefixes)
    assert "Contents" not in top
    hours = s3.list_objects_v2(Bucket=LAKE, Prefix="clickstream_events/dt=2019-01-22/", Delimiter="/")
    assert [p["Prefix"] for p in hours["CommonPrefixes"]] == [
        "clickstream_events/dt=2019-01-22/hour=00/",
        "clickstream_events/dt=2019-01-22/hour=01/",
    ]
    # a prefix that ends inside a name; another delimiter than "/"
    part = s3.list_objects_v2(Bucket=LAKE, Prefix="clickstream_events/dt=2019-01-22/hour=0", Delimiter="=")
    assert [o["Key"] for o in part["Contents"]] == PARQUET_KEYS
    assert "CommonPrefixes" not in part
    equals = s3.list_objects_v2(Bucket=LAKE, Prefix="clickstream_events/", Delimiter="=")
    assert [p["Prefix"] for p in equals["CommonPrefixes"]] == ["clickstream_events/dt="]
    assert "Contents" not in equals
    dashed = s3.list_objects_v2(Bucket=LAKE, Prefix="order/", Delimiter="-")
    assert [p["Prefix"] for p in dashed["CommonPrefixes"]] == ["order/a-"]
    assert [o["Key"] for o in dashed["Contents"]] == [
        "order/Z",
        "order/a/x",
        "order/a0",
        "order/z/y",
        "order/é",
    ]


def test_links_fifos_and_files_being_written_are_not_objects(s3) -> None:
    free = s3.list_objects_v2(Bucket=LAKE, Prefix="free/")
    assert free["KeyCount"] == 0
    hour = s3.list_objects_v2(Bucket=LAKE, Prefix="clickstream_events/dt=2019-01-22/hour=00/")
    assert [o["Key"].rsplit("/", 1)[1] for o in hour["Contents"]] == [
        "clickstream.events+0+00000000000000000000.parquet",
        "clickstream.events+1+00000000000000000000.parquet",
    ]
    for key in ("free/link-file", "free/link-dir/secret.txt", "free/link-up/free/fifo", "free/fifo",
                "outlink/secret.txt", f"{PARQUET_KEYS[0]}/x",
                "clickstream_events/dt=2019-01-22/hour=00/.clickstream.events+2+00000000000000000000.parquet.tmp"):  # fmt: skip
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=LAKE, Key=key)
        assert code_of(exc) == ("NoSuchKey", 404), key
        assert exc.value.response["Error"]["Key"] == key


def test_keys_come_in_utf8_byte_order_not_folder_order(s3) -> None:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE, Prefix="order/")["Contents"]]
    assert keys == ["order/Z", "order/a-b", "order/a/x", "order/a0", "order/z/y", "order/é"]
    assert keys == sorted(keys, key=lambda k: k.encode())


def test_paging_2500_keys_with_continuation_tokens(s3) -> None:
    expected = [f"paging/f{f:02d}/k{i:03d}" for f in range(25) for i in range(100)]
    first = s3.list_objects_v2(Bucket=LAKE, Prefix="paging/")
    assert (first["KeyCount"], first["IsTruncated"]) == (1000, True)
    second = s3.list_objects_v2(
        Bucket=LAKE, Prefix="paging/", ContinuationToken=first["NextContinuationToken"]
    )
    assert second["ContinuationToken"] == first["NextContinuationToken"]
    third = s3.list_objects_v2(
        Bucket=LAKE, Prefix="paging/", ContinuationToken=second["NextContinuationToken"]
    )
    assert (second["KeyCount"], third["KeyCount"], third["IsTruncated"]) == (1000, 500, False)
    assert "NextContinuationToken" not in third
    keys = [o["Key"] for page in (first, second, third) for o in page["Contents"]]
    assert keys == expected
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=LAKE, Prefix="paging/", PaginationConfig={"PageSize": 300})  # fmt: skip
    counts = [page["KeyCount"] for page in pages]
    assert counts == [300] * 8 + [100]
    after = s3.list_objects_v2(Bucket=LAKE, Prefix="paging/", StartAfter="paging/f24/k097")
    assert [o["Key"] for o in after["Contents"]] == ["paging/f24/k098", "paging/f24/k099"]
    assert after["StartAfter"] == "paging/f24/k097"
    assert s3.list_objects_v2(Bucket=LAKE, Prefix="paging/", MaxKeys=0)["KeyCount"] == 0


def test_paging_common_prefixes(s3) -> None:
    seen, token, pages = [], None, 0
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=LAKE, Prefix="paging/", Delimiter="/", MaxKeys=10, **extra)
        seen += [p["Prefix"] for p in page["CommonPrefixes"]]
        pages += 1
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == [f"paging/f{f:02d}/" for f in range(25)]
    assert pages == 3


def test_list_objects_v1_pages_with_markers(s3) -> None:
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=LAKE, Prefix="paging/f03/", PaginationConfig={"PageSize": 40}))  # fmt: skip
    assert [len(p["Contents"]) for p in pages] == [40, 40, 20]
    assert [o["Key"] for p in pages for o in p["Contents"]] == [f"paging/f03/k{i:03d}" for i in range(100)]
    first = s3.list_objects(Bucket=LAKE, Prefix="paging/f03/", MaxKeys=2, Marker="paging/f03/k010")
    assert [o["Key"] for o in first["Contents"]] == ["paging/f03/k011", "paging/f03/k012"]
    assert (first["IsTruncated"], first["NextMarker"]) == (True, "paging/f03/k012")


def test_url_encoding_type_carries_any_key(s3, world) -> None:
    names = ["enc/a b+c", "enc/percent%2e%2e", "enc/ünï cödé", "enc/q?x=1&y"]
    for name in names:
        s3.put_object(Bucket=LAKE, Key=name, Body=name.encode())
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE, Prefix="enc/")["Contents"]] == sorted(names, key=str.encode)  # fmt: skip
    for name in names:
        assert s3.get_object(Bucket=LAKE, Key=name)["Body"].read() == name.encode()
    status, body = raw(
        str(world["url"]), "GET", b"/tidelake-lake?list-type=2&prefix=enc%2Fa&encoding-type=url"
    )
    assert status == 200
    assert b"<Key>enc/a%20b%2Bc</Key>" in body
    assert b"<EncodingType>url</EncodingType>" in body
    assert (world["lake"] / "enc/percent%2e%2e").read_bytes() == b"enc/percent%2e%2e"


# -- reading --------------------------------------------------------------------------------------
def test_get_object_returns_the_parquet_file_byte_for_byte(s3, world) -> None:
    key, data = PARQUET_KEYS[2], world["files"][PARQUET_KEYS[2]]
    got = s3.get_object(Bucket=LAKE, Key=key)
    body = got["Body"].read()
    assert body == data
    assert (got["ETag"], got["ContentLength"], got["AcceptRanges"]) == (md5(data), len(data), "bytes")
    assert pq.read_table(io.BytesIO(body)).column("event_id").to_pylist() == [f"e{20 + i}" for i in range(7)]
    head = s3.head_object(Bucket=LAKE, Key=key)
    assert (head["ETag"], head["ContentLength"]) == (md5(data), len(data))
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=LAKE, Key="clickstream_events/none.parquet")
    assert code_of(exc) == ("404", 404)
    with pytest.raises(s3.exceptions.NoSuchKey) as missing:
        s3.get_object(Bucket=LAKE, Key="clickstream_events/none.parquet")
    assert missing.value.response["Error"]["Key"] == "clickstream_events/none.parquet"
    assert len(missing.value.response["ResponseMetadata"]["RequestId"]) == 16


def test_range_gets(s3, world) -> None:
    key, data = PARQUET_KEYS[0], world["files"][PARQUET_KEYS[0]]
    size = len(data)
    first = s3.get_object(Bucket=LAKE, Key=key, Range="bytes=0-3")
    assert (first["Body"].read(), first["ContentRange"], first["ContentLength"]) == (
        b"PAR1",
        f"bytes 0-3/{size}",
        4,
    )
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 206
    footer = s3.get_object(Bucket=LAKE, Key=key, Range="bytes=-8")["Body"].read()
    assert footer == data[-8:] and footer.endswith(b"PAR1")
    tail = s3.get_object(Bucket=LAKE, Key=key, Range=f"bytes={size - 10}-")
    assert (tail["Body"].read(), tail["ContentRange"]) == (data[-10:], f"bytes {size - 10}-{size - 1}/{size}")
    past = s3.get_object(Bucket=LAKE, Key=key, Range=f"bytes=100-{size + 1000}")
    assert (past["Body"].read(), past["ContentRange"]) == (data[100:], f"bytes 100-{size - 1}/{size}")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=LAKE, Key=key, Range=f"bytes={size}-")
    assert code_of(exc) == ("InvalidRange", 416)


def test_conditional_gets(s3, world) -> None:
    key, data = PARQUET_KEYS[1], world["files"][PARQUET_KEYS[1]]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=LAKE, Key=key, IfNoneMatch=md5(data))
    assert code_of(exc) == ("304", 304)
    assert s3.get_object(Bucket=LAKE, Key=key, IfNoneMatch='"0123"')["Body"].read() == data
    assert s3.get_object(Bucket=LAKE, Key=key, IfMatch=md5(data))["Body"].read() == data
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=LAKE, Key=key, IfMatch='"0123"')
    assert code_of(exc) == ("PreconditionFailed", 412)


def test_query_results_are_a_read_only_bucket(s3, world) -> None:
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=RESULTS_BUCKET)["Contents"]] == [
        "q1.csv",
        "q1.csv.metadata",
    ]
    assert s3.get_object(Bucket=RESULTS_BUCKET, Key="q1.csv")["Body"].read() == b'"page","views"\n"/","3"\n'
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=RESULTS_BUCKET, Key="q2.csv", Body=b"x")
    assert code_of(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=RESULTS_BUCKET, Key="q1.csv")
    assert code_of(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=RESULTS_BUCKET, Key="athena-state.sqlite3")
    assert code_of(exc) == ("NoSuchKey", 404)
    assert sorted(p.name for p in world["results"].iterdir()) == [
        "athena-state.sqlite3",
        "q1.csv",
        "q1.csv.metadata",
    ]


# -- writing --------------------------------------------------------------------------------------
def test_put_get_overwrite_delete(s3, world) -> None:
    lake = world["lake"]
    put = s3.put_object(Bucket=LAKE, Key="external/orders/part-0.csv", Body=b"id,amount\n1,10\n")
    assert put["ETag"] == md5(b"id,amount\n1,10\n")
    assert (lake / "external/orders/part-0.csv").read_bytes() == b"id,amount\n1,10\n"
    s3.put_object(Bucket=LAKE, Key="external/orders/part-0.csv", Body=b"id,amount\n2,20\n")
    assert s3.get_object(Bucket=LAKE, Key="external/orders/part-0.csv")["Body"].read() == b"id,amount\n2,20\n"
    assert sorted(os.listdir(lake / "external/orders")) == ["part-0.csv"]  # no temp file left
    assert s3.delete_object(Bucket=LAKE, Key="external/orders/part-0.csv")["ResponseMetadata"]["HTTPStatusCode"] == 204  # fmt: skip
    assert not (lake / "external").exists()  # folders it left empty are gone too
    assert s3.delete_object(Bucket=LAKE, Key="external/orders/never.csv")["ResponseMetadata"]["HTTPStatusCode"] == 204  # fmt: skip


def test_put_with_a_wrong_content_md5_is_bad_digest_and_writes_nothing(s3, world) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=LAKE,
            Key="digest/x.bin",
            Body=b"abc",
            ContentMD5=base64.b64encode(hashlib.md5(b"abd").digest()).decode(),
        )
    assert code_of(exc) == ("BadDigest", 400)
    assert not (world["lake"] / "digest").exists()  # nor the folder it would have gone in


def test_delete_objects_reports_each_key(s3, world) -> None:
    for name in ("a", "b"):
        s3.put_object(Bucket=LAKE, Key=f"batch/{name}", Body=name.encode())
    answer = s3.delete_objects(
        Bucket=LAKE,
        Delete={
            "Objects": [
                {"Key": "batch/a"},
                {"Key": "batch/b"},
                {"Key": PARQUET_KEYS[0]},
                {"Key": "_sinks/clickstream-events/manifest.json"},
            ]
        },
    )
    assert [d["Key"] for d in answer["Deleted"]] == ["batch/a", "batch/b"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [
        (PARQUET_KEYS[0], "AccessDenied"),
        ("_sinks/clickstream-events/manifest.json", "AccessDenied"),
    ]
    assert (world["lake"] / PARQUET_KEYS[0]).read_bytes() == world["files"][PARQUET_KEYS[0]]
    assert s3.list_objects_v2(Bucket=LAKE, Prefix="batch/")["KeyCount"] == 0


def test_copy_object_from_the_results_into_the_lake(s3, world) -> None:
    copied = s3.copy_object(
        Bucket=LAKE, Key="copies/q1.csv", CopySource={"Bucket": RESULTS_BUCKET, "Key": "q1.csv"}
    )
    assert copied["CopyObjectResult"]["ETag"] == md5(b'"page","views"\n"/","3"\n')
    assert (world["lake"] / "copies/q1.csv").read_bytes() == b'"page","views"\n"/","3"\n'


def test_datasets_of_delivery_streams_are_read_only(s3, world) -> None:
    lake, before = world["lake"], dict(world["files"])
    attempts = {
        "put": lambda: s3.put_object(
            Bucket=LAKE, Key="clickstream_events/dt=2019-01-22/hour=00/mine.parquet", Body=b"x"
        ),
        "overwrite": lambda: s3.put_object(Bucket=LAKE, Key=PARQUET_KEYS[0], Body=b"x"),
        "delete": lambda: s3.delete_object(Bucket=LAKE, Key=PARQUET_KEYS[1]),
        "multipart": lambda: s3.create_multipart_upload(Bucket=LAKE, Key="clickstream_events/big.parquet"),
        "copy": lambda: s3.copy_object(
            Bucket=LAKE,
            Key="clickstream_events/c.csv",
            CopySource={"Bucket": RESULTS_BUCKET, "Key": "q1.csv"},
        ),
        "dead letters": lambda: s3.put_object(
            Bucket=LAKE, Key="_errors/clickstream_events/processing-failed/y.parquet", Body=b"x"
        ),
        "sinks state": lambda: s3.put_object(
            Bucket=LAKE, Key="_sinks/clickstream-events/manifest.json", Body=b"x"
        ),
        "owner record": lambda: s3.delete_object(Bucket=LAKE, Key="_sinks/_owners/clickstream_events.owner"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ClientError) as exc:
            attempt()
        assert code_of(exc) == ("AccessDenied", 403), what
        assert "Access Denied" in exc.value.response["Error"]["Message"]
    for key, data in before.items():
        assert (lake / key).read_bytes() == data
    assert not (lake / "clickstream_events/dt=2019-01-22/hour=00/mine.parquet").exists()
    assert (lake / "_sinks/clickstream-events/manifest.json").read_text() == "{}"
    assert (lake / "_sinks/_owners/clickstream_events.owner").is_file()
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=LAKE, Key="_sinks/clickstream-events/manifest.json")
    assert code_of(exc) == ("AccessDenied", 403)
    # a dataset nobody owns takes writes; a name that only starts like an owned one too
    s3.put_object(Bucket=LAKE, Key="clickstream_events_copy/x.bin", Body=b"ok")
    assert (lake / "clickstream_events_copy/x.bin").read_bytes() == b"ok"


def test_every_path_escape_spelling_is_refused(s3, world) -> None:
    url, lake, outside = str(world["url"]), world["lake"], world["outside"]
    for key in ("../escaped.txt", "a/../../escaped.txt", "./escaped.txt", "a//escaped.txt", "/escaped.txt",
                "free/..", "free/.hidden"):  # fmt: skip
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=LAKE, Key=key, Body=b"x")
        assert code_of(exc) == ("InvalidArgument", 400), key
    for path in (b"/tidelake-lake/%2e%2e/escaped.txt", b"/tidelake-lake/%2E%2E%2Fescaped.txt",
                 b"/tidelake-lake/a/%2e%2e/%2e%2e/escaped.txt", b"/tidelake-lake/..%2f..%2fescaped.txt",
                 b"/tidelake-lake/free%2f..%2f..%2fescaped.txt", b"/tidelake-lake/%2e/escaped.txt",
                 b"/tidelake-lake/../escaped.txt", b"/tidelake-lake/free/%00escaped.txt"):  # fmt: skip
        status, body = raw(url, "PUT", path, b"x")
        assert (status, b"<Code>InvalidArgument</Code>" in body) == (400, True), path
        for method in ("GET", "HEAD", "DELETE"):
            status, body = raw(url, method, path)
            assert status == 400, (method, path)
    # links inside the lake that lead out: writing through them is refused, reading finds nothing
    for key in ("free/link-dir/escaped.txt", "free/link-up/escaped.txt", "outlink/escaped.txt"):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=LAKE, Key=key, Body=b"x")
        assert code_of(exc) == ("InvalidArgument", 400), key
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=LAKE, Key="free/link-dir/secret.txt")
    assert code_of(exc) == ("NoSuchKey", 404)
    s3.delete_object(Bucket=LAKE, Key="free/link-file")  # a link is not an object: left alone
    assert (lake / "free/link-file").is_symlink()
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == SECRET
    assert not (lake.parent / "escaped.txt").exists() and not (lake / "escaped.txt").exists()


# -- multipart ------------------------------------------------------------------------------------
def test_multipart_upload_with_boto3_and_its_errors(s3, world) -> None:
    key = "multi/boto.bin"
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"]
    upload = s3.create_multipart_upload(Bucket=LAKE, Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket=LAKE, Key=key, UploadId=upload, PartNumber=n + 1, Body=d)["ETag"] for n, d in enumerate(parts_data)]  # fmt: skip
    assert etags == [md5(d) for d in parts_data]
    # nothing of it is visible before it completes, in S3 or in the lake's folder
    assert s3.list_objects_v2(Bucket=LAKE, Prefix="multi/")["KeyCount"] == 0
    assert not (world["lake"] / "multi").exists()
    listed = s3.list_parts(Bucket=LAKE, Key=key, UploadId=upload)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == [
        (1, 5 * MIB, etags[0]), (2, 5 * MIB, etags[1]), (3, 4, etags[2]),
    ]  # fmt: skip
    mine = [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]
    for wrong, code in (
        ([mine[1], mine[0], mine[2]], "InvalidPartOrder"),
        ([mine[0], {"PartNumber": 2, "ETag": md5(b"other")}, mine[2]], "InvalidPart"),
        ([mine[0], mine[1], {"PartNumber": 4, "ETag": etags[2]}], "InvalidPart"),
    ):
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=LAKE, Key=key, UploadId=upload, MultipartUpload={"Parts": wrong}
            )
        assert code_of(exc) == (code, 400)
    done = s3.complete_multipart_upload(
        Bucket=LAKE, Key=key, UploadId=upload, MultipartUpload={"Parts": mine}
    )
    joined = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest()
    assert done["ETag"] == f'"{joined}-3"'
    assert s3.head_object(Bucket=LAKE, Key=key)["ETag"] == f'"{joined}-3"'
    assert s3.get_object(Bucket=LAKE, Key=key)["Body"].read() == b"".join(parts_data)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=LAKE, Key=key, UploadId=upload, PartNumber=1, Body=b"late")
    assert code_of(exc) == ("NoSuchUpload", 404)
    small = s3.create_multipart_upload(Bucket=LAKE, Key="multi/small.bin")["UploadId"]
    tiny = [s3.upload_part(Bucket=LAKE, Key="multi/small.bin", UploadId=small, PartNumber=n, Body=b"x")["ETag"] for n in (1, 2)]  # fmt: skip
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=LAKE, Key="multi/small.bin", UploadId=small, MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), tiny, strict=True)]})  # fmt: skip
    assert code_of(exc) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=LAKE, Key="multi/small.bin", UploadId=small)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=LAKE, Key="multi/small.bin", UploadId=small)
    assert code_of(exc) == ("NoSuchUpload", 404)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE, Prefix="multi/")["Contents"]] == [key]
    assert os.listdir(world["state"] / "s3" / "uploads") == []


def test_staged_bytes_are_bounded(tmp_path: Path) -> None:
    settings = load_settings(lake={"root": tmp_path / "lake"}, runtime={"state_dir": tmp_path / "state"})
    with endpoint_in_thread(s3_app(settings, max_staged_bytes=6 * MIB)) as url:
        s3 = client(url)
        with pytest.raises(ClientError) as exc:  # no lake folder yet: nothing to list
            s3.list_objects_v2(Bucket=LAKE)
        assert code_of(exc) == ("NoSuchBucket", 404)
        upload = s3.create_multipart_upload(Bucket=LAKE, Key="big.bin")["UploadId"]
        s3.upload_part(Bucket=LAKE, Key="big.bin", UploadId=upload, PartNumber=1, Body=b"a" * 5 * MIB)
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket=LAKE, Key="big.bin", UploadId=upload, PartNumber=2, Body=b"b" * 5 * MIB)
        assert code_of(exc) == ("EntityTooLarge", 400)
        s3.abort_multipart_upload(Bucket=LAKE, Key="big.bin", UploadId=upload)
        again = s3.create_multipart_upload(Bucket=LAKE, Key="big.bin")["UploadId"]
        assert s3.upload_part(Bucket=LAKE, Key="big.bin", UploadId=again, PartNumber=1, Body=b"b" * 5 * MIB)["ETag"] == md5(b"b" * 5 * MIB)  # fmt: skip
    assert not (tmp_path / "lake").exists()  # staged parts live outside the lake


def test_a_put_cut_off_midway_is_never_visible(s3, world) -> None:
    where = urlsplit(str(world["url"]))
    with socket.create_connection((where.hostname, where.port)) as sock:
        sock.sendall(
            b"PUT /tidelake-lake/cut/x.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n"
            b"Authorization: AWS4-HMAC-SHA256 Credential=" + TOKEN.encode() + b"/20261130/us-east-1/s3/aws4_request\r\n\r\n"
            + b"x" * 300_000
        )  # fmt: skip
        time.sleep(0.2)  # let the server write what it got (this is no assertion on time)
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket=LAKE, Key="cut/x.bin")
        assert code_of(exc) == ("404", 404)
    deadline = time.monotonic() + 20
    while (
        (world["lake"] / "cut").exists() and os.listdir(world["lake"] / "cut") and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not (world["lake"] / "cut").exists()  # the temp file is gone, and its folder
    assert s3.list_objects_v2(Bucket=LAKE, Prefix="cut/")["KeyCount"] == 0


# -- the AWS CLI ----------------------------------------------------------------------------------
def aws(
    url: str, *args: str, key: str = TOKEN, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **aws_cli_env(key, TZ="UTC"), **(env or {})}
    exe = AWS_CLI
    endpoint = ["--endpoint-url", url] if url else []
    return subprocess.run([str(exe), *endpoint, *args], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip


def test_aws_cli_ls_cp_rm(world, tmp_path: Path) -> None:
    url, lake = str(world["url"]), world["lake"]
    listed = aws(url, "s3", "ls", f"s3://{LAKE}/clickstream_events/", "--recursive")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[2:] for line in lines] == [[str(len(world["files"][k])), k] for k in PARQUET_KEYS]
    buckets = aws(url, "s3", "ls")
    assert [line.split()[2] for line in buckets.stdout.splitlines()] == [LAKE, RESULTS_BUCKET]
    by_env = aws("", "s3", "ls", f"s3://{LAKE}/order/", env={"AWS_ENDPOINT_URL_S3": url})  # no --endpoint-url
    assert [line.split()[-1] for line in by_env.stdout.splitlines()] == ["a/", "z/", "Z", "a-b", "a0", "é"]
    big = tmp_path / "big20.bin"
    data = os.urandom(20 * MIB)
    big.write_bytes(data)
    up = aws(url, "s3", "cp", str(big), f"s3://{LAKE}/cli/big20.bin")
    assert up.returncode == 0, up.stderr
    assert (lake / "cli/big20.bin").read_bytes() == data
    chunk = 8 * MIB  # the CLI's multipart_chunksize
    joined = hashlib.md5(
        b"".join(hashlib.md5(data[i : i + chunk]).digest() for i in range(0, len(data), chunk))
    )
    head = client(url).head_object(Bucket=LAKE, Key="cli/big20.bin")
    assert head["ETag"] == f'"{joined.hexdigest()}-3"'
    back = tmp_path / "back.bin"
    down = aws(url, "s3", "cp", f"s3://{LAKE}/cli/big20.bin", str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == data
    cli_ls = aws(url, "s3", "ls", f"s3://{LAKE}/cli/")
    assert cli_ls.stdout.split()[2:] == [str(20 * MIB), "big20.bin"]
    refused = aws(url, "s3", "cp", str(big), f"s3://{LAKE}/clickstream_events/big20.bin")
    assert refused.returncode == 1
    assert "AccessDenied" in refused.stderr
    rm = aws(url, "s3", "rm", f"s3://{LAKE}/cli/big20.bin")
    assert (rm.returncode, rm.stdout.strip()) == (0, f"delete: s3://{LAKE}/cli/big20.bin")
    assert not (lake / "cli").exists()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub/b.txt").write_text("b")
    assert aws(url, "s3", "sync", str(src), f"s3://{LAKE}/synced/").returncode == 0
    again = aws(url, "s3", "sync", str(src), f"s3://{LAKE}/synced/")  # same sizes and times: nothing to do
    assert (again.returncode, again.stdout) == (0, "")
    moved = aws(
        url, "s3", "mv", f"s3://{LAKE}/synced/a.txt", f"s3://{LAKE}/moved/a.txt"
    )  # CopyObject + delete
    assert moved.returncode == 0, moved.stderr
    assert sorted(str(p.relative_to(lake)) for p in (lake / "synced").rglob("*")) == [
        "synced/sub",
        "synced/sub/b.txt",
    ]
    assert (lake / "moved/a.txt").read_text() == "a"
    assert aws(url, "s3", "rm", f"s3://{LAKE}/synced/", "--recursive").returncode == 0
    assert not (lake / "synced").exists()
    wrong = aws(url, "s3", "ls", f"s3://{LAKE}/", key="not-the-token")
    assert wrong.returncode == 255 and "InvalidAccessKeyId" in wrong.stderr


# -- the serve rules ------------------------------------------------------------------------------
def test_token_and_host_rules(world) -> None:
    url = str(world["url"])
    with pytest.raises(ClientError) as exc:
        client(url, key="wrong").list_objects_v2(Bucket=LAKE)
    assert code_of(exc) == ("InvalidAccessKeyId", 403)
    status, _ = raw(url, "GET", b"/tidelake-lake?list-type=2", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    status, body = raw(url, "GET", b"/tidelake-lake?list-type=2", headers={"Host": "attacker.example"})
    assert (status, body) == (400, b"Invalid host header")
    # virtual-hosted style: <bucket>.<a known host>
    status, body = raw(url, "GET", b"/?list-type=2&prefix=order/", headers={"Host": f"{LAKE}.localhost"})
    assert status == 200 and b"<Key>order/Z</Key>" in body
    presigned = client(url).generate_presigned_url("get_object", Params={"Bucket": LAKE, "Key": "order/Z"})
    status, body = raw(url, "GET", presigned.removeprefix(url).encode(), headers={"Authorization": ""})
    assert (status, body) == (200, b"order/Z")


def test_requests_that_are_not_s3_reach_the_query_app(world) -> None:
    url = str(world["url"])
    status, body = raw(url, "GET", b"/api/tables", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body) == (200, b'{"answered_by":"query app"}')
    athena = b"AWS4-HMAC-SHA256 Credential=" + TOKEN.encode() + b"/20261130/us-east-1/athena/aws4_request"
    status, body = raw(url, "POST", b"/", b"{}", headers={"Authorization": athena.decode(), "X-Amz-Target": "AmazonAthena.ListWorkGroups"})  # fmt: skip
    assert (status, body) == (200, b'{"answered_by":"query app"}')


def test_bucket_and_version_actions_clients_call_answer_as_s3_does(s3, world) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=LAKE)  # never versioned
    first = s3.list_object_versions(Bucket=LAKE, Prefix="order/", MaxKeys=2)
    assert [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in first["Versions"]] == [
        ("order/Z", "null", True, 7),
        ("order/a-b", "null", True, 9),
    ]
    assert (first["IsTruncated"], first["NextKeyMarker"], first["NextVersionIdMarker"]) == (
        True,
        "order/a-b",
        "null",
    )
    rest = s3.list_object_versions(
        Bucket=LAKE, Prefix="order/", KeyMarker="order/a-b", VersionIdMarker="null"
    )
    assert [v["Key"] for v in rest["Versions"]] == ["order/a/x", "order/a0", "order/z/y", "order/é"]
    assert rest["IsTruncated"] is False
    rolled = s3.list_object_versions(Bucket=LAKE, Prefix="order/", Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["order/a/", "order/z/"]
    # the version id S3 gives every object of an unversioned bucket reads the object
    assert s3.get_object(Bucket=LAKE, Key="order/Z", VersionId="null")["Body"].read() == b"order/Z"
    assert s3.get_object_tagging(Bucket=LAKE, Key=PARQUET_KEYS[0])["TagSet"] == []
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=LAKE, Key="no/such/key")
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=LAKE)
    assert code_of(exc) == ("NoSuchTagSet", 404)
    assert s3.get_bucket_location(Bucket=LAKE)["LocationConstraint"] is None  # us-east-1
    assert s3.head_bucket(Bucket=RESULTS_BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_buckets_are_fixed_and_writes_tidelake_does_not_keep_are_refused(s3, world) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="my-new-bucket")
    assert code_of(exc) == ("AccessDenied", 403)
    assert "tidelake's buckets are fixed" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=LAKE)
    assert code_of(exc) == ("BucketAlreadyOwnedByYou", 409)
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=LAKE)
    assert code_of(exc) == ("BucketNotEmpty", 409)
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="my-new-bucket")
    assert code_of(exc) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=LAKE, Key="order/Z", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert code_of(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=LAKE, VersioningConfiguration={"Status": "Enabled"})
    assert code_of(exc) == ("NotImplemented", 501)
    made = aws(str(world["url"]), "s3", "mb", "s3://my-new-bucket")
    assert made.returncode == 1
    assert "make_bucket failed: s3://my-new-bucket An error occurred (AccessDenied)" in made.stderr
    assert s3.list_objects_v2(Bucket=LAKE, Prefix="order/Z")["KeyCount"] == 1  # nothing was lost


def test_s3_beside_athena_on_one_port_reads_a_query_result(tmp_path: Path) -> None:
    """As serve mounts it: S3 in front of the AWS endpoint and the real query app, one port."""
    lake, results = tmp_path / "lake", tmp_path / "results"
    key = PARQUET_KEYS[0]
    (lake / key).parent.mkdir(parents=True)
    (lake / key).write_bytes(_parquet(3, 0))
    settings = load_settings(lake={"root": lake}, runtime={"state_dir": tmp_path / "state"}, query={"results_dir": results})  # fmt: skip
    with Engine(lake, Limits(timeout_s=60), sessions=1) as engine:
        service = QueryService(engine, ResultStore(results), 1)
        try:
            app = s3_in_front(
                s3_app(settings, TOKEN),
                aws_endpoint(create_app(service, TOKEN), {}, token=TOKEN),
            )
            with endpoint_in_thread(app) as url:
                athena = boto3.client(
                    "athena", endpoint_url=url, region_name="us-east-1", aws_access_key_id=TOKEN, aws_secret_access_key="x"
                )  # fmt: skip
                sql = "SELECT event_id, status FROM clickstream_events ORDER BY event_id"
                query_id = athena.start_query_execution(QueryString=sql)["QueryExecutionId"]
                deadline = time.monotonic() + 60
                state = "QUEUED"
                while state in ("QUEUED", "RUNNING") and time.monotonic() < deadline:
                    state = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"][
                        "State"
                    ]
                    time.sleep(0.05)
                assert state == "SUCCEEDED"
                s3 = client(url)
                csv = s3.get_object(Bucket=RESULTS_BUCKET, Key=f"{query_id}.csv")["Body"].read()
                assert csv == b'"event_id","status"\n"e0","200"\n"e1","201"\n"e2","202"\n'
                assert [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE)["Contents"]] == [key]
        finally:
            service.close()


# -- values that would break the answer, writes the lake refuses ------------------------------------
def _open_fds_to(path: Path) -> int:
    """How many of this process's fds (the server runs in a thread of it) are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_response_overrides_that_cannot_be_headers_are_invalid_argument_and_leak_nothing(s3, world) -> None:  # fmt: skip
    key = "headers/a.txt"
    s3.put_object(Bucket=LAKE, Key=key, Body=b"hello")
    path = Path(str(world["lake"])) / key
    before = _open_fds_to(path)
    bad = [b"response-content-type=a%0d%0ab", b"response-content-type=%E2%82%AC", b"response-content-type=a%0ab",
           b"response-content-disposition=x%0d%0aSet-Cookie:%20a=b", b"response-cache-control=%00",
           b"response-content-type=%ff"]  # fmt: skip
    for query in bad * 5:
        status, body = raw(
            str(world["url"]), "GET", b"/" + LAKE.encode() + b"/" + key.encode() + b"?" + query
        )
        assert status == 400, query
        assert b"<Code>InvalidArgument</Code>" in body, query
    assert _open_fds_to(path) == before == 0
    # a plain value is still the object's Content-Type
    got = s3.get_object(Bucket=LAKE, Key=key, ResponseContentType="text/csv; charset=utf-8")
    assert (got["ContentType"], got["Body"].read()) == ("text/csv; charset=utf-8", b"hello")
    for _ in range(200):  # the server closes the file just after its last byte is sent
        if _open_fds_to(path) == 0:
            break
        time.sleep(0.05)
    assert _open_fds_to(path) == 0


def test_dead_letters_are_read_only_whoever_owns_them(s3, world) -> None:
    lake = Path(str(world["lake"]))
    dead = lake / "_errors/unclaimed_ds/processing-failed/2026/11/30/22/r.parquet"
    dead.parent.mkdir(parents=True)
    dead.write_bytes(b"dead letter")
    key = "_errors/unclaimed_ds/processing-failed/2026/11/30/22/r.parquet"
    attempts = {
        "delete": lambda: s3.delete_object(Bucket=LAKE, Key=key),
        "overwrite": lambda: s3.put_object(Bucket=LAKE, Key=key, Body=b"forged"),
        "forge": lambda: s3.put_object(Bucket=LAKE, Key="_errors/unclaimed_ds/y.txt", Body=b"x"),
        "new dataset": lambda: s3.put_object(Bucket=LAKE, Key="_errors/other/x.parquet", Body=b"x"),
        "multipart": lambda: s3.create_multipart_upload(Bucket=LAKE, Key="_errors/unclaimed_ds/z"),
        "copy": lambda: s3.copy_object(
            Bucket=LAKE,
            Key="_errors/unclaimed_ds/c.csv",
            CopySource={"Bucket": RESULTS_BUCKET, "Key": "q1.csv"},
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ClientError) as exc:
            attempt()
        assert code_of(exc) == ("AccessDenied", 403), what
    deleted = s3.delete_objects(Bucket=LAKE, Delete={"Objects": [{"Key": key}]})
    assert [e["Code"] for e in deleted.get("Errors", [])] == ["AccessDenied"]
    assert dead.read_bytes() == b"dead letter"
    assert sorted(p.name for p in (lake / "_errors/unclaimed_ds").rglob("*") if p.is_file()) == ["r.parquet"]
    assert not (lake / "_errors/other").exists()
    assert s3.get_object(Bucket=LAKE, Key=key)["Body"].read() == b"dead letter"  # still readable


def test_a_put_onto_a_link_is_refused_and_keeps_the_link(s3, world) -> None:
    lake, outside = Path(str(world["lake"])), Path(str(world["outside"]))
    link = lake / "putlink/pw"
    link.parent.mkdir()
    link.symlink_to(outside / "secret.txt")
    for attempt in (
        lambda: s3.put_object(Bucket=LAKE, Key="putlink/pw", Body=b"PWNED"),
        lambda: s3.copy_object(
            Bucket=LAKE, Key="putlink/pw", CopySource={"Bucket": RESULTS_BUCKET, "Key": "q1.csv"}
        ),
    ):
        with pytest.raises(ClientError) as exc:
            attempt()
        assert code_of(exc) == ("InvalidArgument", 400)
    assert link.is_symlink()
    assert (outside / "secret.txt").read_bytes() == SECRET
    assert [p.name for p in link.parent.iterdir()] == ["pw"]  # no temp file left beside it


def test_content_length_with_transfer_encoding_is_refused(world) -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n"
    status, answer = raw(str(world["url"]), "PUT", f"/{LAKE}/smuggle/x.txt".encode(), body,
                         {"Transfer-Encoding": "chunked"})  # fmt: skip
    assert status == 400
    assert b"<Code>InvalidRequest</Code>" in answer
    assert not (Path(str(world["lake"])) / "smuggle").exists()


def test_an_object_answer_that_never_starts_still_closes_its_file(tmp_path: Path) -> None:
    (tmp_path / "o").write_bytes(b"x" * 10)
    fd = os.open(tmp_path / "o", os.O_RDONLY)
    response = _ObjectResponse(_Span(fd, 0, 10), status_code=200, headers={"Content-Length": "10"})

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        raise RuntimeError("the server refused the headers")  # as h11 refuses a CR/LF in a value

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "headers": []}
    assert _open_fds_to(tmp_path / "o") == 1
    with pytest.raises(RuntimeError):
        asyncio.run(response(scope, receive, send))
    assert _open_fds_to(tmp_path / "o") == 0
