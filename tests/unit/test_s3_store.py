"""The S3 face's rules without a server: keys, owned prefixes, listing order, ranges, preconditions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.lake import OWNER_SUFFIX, OWNERS_DIR
from queries.s3_api import _decode_token, _encode_token, _parse_range, _preconditions, is_s3_request
from queries.s3_store import (
    Bucket,
    BucketStore,
    ETags,
    ObjectInfo,
    Uploads,
    check_key,
    multipart_etag,
)
from queries.s3_xml import S3Error, error_response
from sinks.ownership import DatasetClaims, owner_path


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("..", "InvalidArgument"),
        ("a/../b", "InvalidArgument"),
        ("./a", "InvalidArgument"),
        ("a//b", "InvalidArgument"),
        ("/a", "InvalidArgument"),
        ("a/", "InvalidArgument"),
        ("a/\x00b", "InvalidArgument"),
        ("a\nb", "InvalidArgument"),
        ("x" * 256, "InvalidArgument"),
        ("a/" * 512 + "b", "KeyTooLongError"),
        ("", "InvalidArgument"),
    ],
)
def test_keys_a_folder_cannot_hold_are_refused(key: str, code: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_key(key)
    assert (exc.value.code, exc.value.status) == (code, 400)


def test_names_starting_with_a_dot_are_refused_for_writes_only() -> None:
    assert check_key("a/.b") == ["a", ".b"]
    with pytest.raises(S3Error) as exc:
        check_key("a/.b", write=True)
    assert exc.value.code == "InvalidArgument"
    assert check_key("dt=2019-01-22/a b+c%2e%2e/é") == ["dt=2019-01-22", "a b+c%2e%2e", "é"]


def test_owner_records_are_named_as_sinks_ownership_writes_them(tmp_path: Path) -> None:
    assert owner_path(tmp_path, "views").relative_to(tmp_path).parts == (
        "_sinks",
        OWNERS_DIR,
        f"views{OWNER_SUFFIX}",
    )
    DatasetClaims(tmp_path, "s1", "g1").claim("views")
    DatasetClaims(tmp_path, "s2", "g2", dead_letters=True).claim("views")
    DatasetClaims(tmp_path, "s3", "g3").claim("other_one")
    store = BucketStore(Bucket("lake", tmp_path, guarded=True), ETags(tmp_path / "state"))
    assert store.owned_prefixes() == ["_errors/views/", "other_one/", "views/"]
    assert store.owner_of(["views", "x.parquet"]) == "views/"
    assert store.owner_of(["views"]) == "views/"
    assert store.owner_of(["views_2", "x"]) is None
    assert store.owner_of(["_errors", "views", "t", "x"]) == "_errors/views/"
    assert store.owner_of(["_errors", "other_one", "x"]) is None
    with pytest.raises(S3Error) as exc:
        store.check_writable("views/dt=2019-01-22/x.parquet")
    assert (exc.value.code, exc.value.status) == ("AccessDenied", 403)
    assert exc.value.text == (
        "Access Denied: views/ is written by delivery stream 's1' (lake/_sinks/_owners/views.owner); "
        "its objects are read-only. Write to another prefix."
    )


def _tree(root: Path, keys: list[str]) -> BucketStore:
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(key.encode())
    return BucketStore(Bucket("b", root), ETags(root.parent / "state"))


def test_listing_is_in_utf8_byte_order_across_folders(tmp_path: Path) -> None:
    keys = ["a/b", "a-b", "a0", "a/b/c", "A", "é/x", "z", "a!"]
    keys.remove("a/b")  # a key cannot be both an object and a folder here
    store = _tree(tmp_path / "root", keys)
    assert [o.key for o in store.list().contents] == sorted(keys, key=str.encode)
    page = store.list(delimiter="/")
    assert ([o.key for o in page.contents], page.prefixes) == (["A", "a!", "a-b", "a0", "z"], ["a/", "é/"])


def test_a_page_that_ends_on_a_common_prefix_resumes_after_it(tmp_path: Path) -> None:
    store = _tree(tmp_path / "root", ["p/a/1", "p/a/2", "p/b", "p/c/1", "p/d"])
    first = store.list("p/", "/", "", 2)
    assert (first.prefixes, [o.key for o in first.contents], first.truncated, first.next_marker) == (
        ["p/a/"],
        ["p/b"],
        True,
        "p/b",
    )
    second = store.list("p/", "/", first.next_marker or "", 1)
    assert (second.prefixes, second.truncated, second.next_marker) == (["p/c/"], True, "p/c/")
    third = store.list("p/", "/", second.next_marker or "", 5)
    assert ([o.key for o in third.contents], third.prefixes, third.truncated) == (["p/d"], [], False)


def test_multipart_etag_is_the_md5_of_the_part_md5s() -> None:
    parts = [b"a" * 10, b"b" * 3]
    etags = [f'"{hashlib.md5(p).hexdigest()}"' for p in parts]
    joined = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert multipart_etag(etags) == f'"{joined}-2"'


def test_unknown_upload_ids_are_no_such_upload(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path)
    upload_id = uploads.create("b", "k")
    for bucket, key, uid in (
        ("b", "other", upload_id),
        ("c", "k", upload_id),
        ("b", "k", "../x"),
        ("b", "k", ""),
    ):
        with pytest.raises(S3Error) as exc:
            uploads.parts(bucket, key, uid)
        assert (exc.value.code, exc.value.status) == ("NoSuchUpload", 404)
    assert uploads.parts("b", "k", upload_id) == []


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-3", (0, 3)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-3", None),
    ],
)
def test_ranges(header: str, span: tuple[int, int] | None) -> None:
    assert _parse_range(header, 100) == span


def test_unsatisfiable_ranges() -> None:
    for header in ("bytes=100-", "bytes=-0"):
        with pytest.raises(S3Error) as exc:
            _parse_range(header, 100)
        assert (exc.value.code, exc.value.status) == ("InvalidRange", 416)


def test_preconditions_follow_rfc_9110_order() -> None:
    info = ObjectInfo("k", 1, 1_700_000_000_000_000_000, '"abc"')
    modified = "Tue, 14 Nov 2023 22:13:20 GMT"  # info's mtime
    assert _preconditions(info, {"if-match": '"abc"'}) is None
    assert _preconditions(info, {"if-match": '"zzz"'}) == 412
    assert _preconditions(info, {"if-match": "*"}) is None
    assert _preconditions(info, {"if-none-match": '"abc"'}) == 304
    assert _preconditions(info, {"if-none-match": '"x", "abc"'}) == 304
    assert _preconditions(info, {"if-modified-since": modified}) == 304
    assert _preconditions(info, {"if-modified-since": "Tue, 14 Nov 2023 22:13:19 GMT"}) is None
    assert _preconditions(info, {"if-unmodified-since": "Tue, 14 Nov 2023 22:13:19 GMT"}) == 412
    # If-Match true wins over If-Unmodified-Since false; If-None-Match false over If-Modified-Since
    assert (
        _preconditions(info, {"if-match": '"abc"', "if-unmodified-since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        is None
    )
    assert _preconditions(info, {"if-none-match": '"x"', "if-modified-since": modified}) is None


def test_continuation_tokens_round_trip_any_key() -> None:
    for key in ("", "a/b", "é/ü+%2e=1", "x" * 1024):
        assert _decode_token(_encode_token(key)) == key
    with pytest.raises(S3Error) as exc:
        _decode_token("not base64!")
    assert exc.value.code == "InvalidArgument"


def _scope(path: str, headers: dict[str, str], query: str = "") -> dict[str, object]:
    return {
        "type": "http",
        "path": path,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_which_requests_are_s3s() -> None:
    s3_scope = (
        "AWS4-HMAC-SHA256 Credential=k/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    )
    athena_scope = s3_scope.replace("/s3/", "/athena/")
    assert is_s3_request(_scope("/", {"authorization": s3_scope}))  # ListBuckets
    assert not is_s3_request(_scope("/", {"authorization": athena_scope}))
    assert not is_s3_request(_scope("/", {}))  # the console
    assert not is_s3_request(_scope("/api/tables", {}))
    assert is_s3_request(_scope("/tidelake-lake/a/b", {}))
    assert is_s3_request(_scope("/tidelake-query-results", {}))
    assert is_s3_request(_scope("/x", {}, "X-Amz-Credential=k%2F20261130%2Fus-east-1%2Fs3%2Faws4_request"))
    assert is_s3_request(_scope("/x", {"host": "tidelake-lake.localhost:8080"}))
    assert not is_s3_request(_scope("/tidelake-lakeside/x", {}))


def test_start_after_inside_a_folder_still_rolls_up_its_later_keys(tmp_path: Path) -> None:
    store = _tree(tmp_path / "root", ["p/a/1", "p/a/2", "p/b"])
    page = store.list("p/", "/", "p/a/1")
    assert (page.prefixes, [o.key for o in page.contents]) == (["p/a/"], ["p/b"])
    assert store.list("p/", "/", "p/a/2").prefixes == []


def test_errors_are_s3s_xml_shape() -> None:
    answer = error_response(S3Error("NoSuchKey", "The specified key does not exist.", 404, key="a/<b>"))
    rid = answer.headers["x-amz-request-id"]
    assert (answer.status_code, answer.headers["content-type"]) == (404, "application/xml")
    assert answer.body.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        "<Message>The specified key does not exist.</Message><Key>a/&lt;b&gt;</Key>"
        f"<RequestId>{rid}</RequestId></Error>"
    )
    head = error_response(S3Error("NoSuchKey", "gone", 404), head=True)
    assert (head.status_code, head.body) == (404, b"")


def test_a_multipart_etag_outlives_a_restart_and_a_replaced_file_gets_its_md5(tmp_path: Path) -> None:
    root, state = tmp_path / "lake", tmp_path / "state"
    store = BucketStore(Bucket("b", root), ETags(state))
    uploads = Uploads(state)
    upload_id = uploads.create("b", "big.bin")
    parts = [b"a" * (5 * 1024 * 1024), b"b"]
    for number, data in enumerate(parts, 1):
        pending = uploads.put_part("b", "big.bin", upload_id, number)
        pending.write(data)
        pending.commit(hashlib.md5(data).hexdigest())
    chosen = [(n, f'"{hashlib.md5(d).hexdigest()}"') for n, d in enumerate(parts, 1)]
    done = uploads.complete(store, "big.bin", upload_id, chosen)
    assert done.etag == multipart_etag([e for _, e in chosen])
    assert not (state / "uploads" / upload_id).exists()
    restarted = BucketStore(Bucket("b", root), ETags(state))
    assert restarted.head("big.bin").etag == done.etag
    pending = restarted.begin_put("big.bin")
    pending.write(b"new")
    pending.commit(f'"{hashlib.md5(b"new").hexdigest()}"')
    again = BucketStore(Bucket("b", root), ETags(state))
    assert again.head("big.bin").etag == f'"{hashlib.md5(b"new").hexdigest()}"'
    assert sorted(p.name for p in root.iterdir()) == ["big.bin"]
