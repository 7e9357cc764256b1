"""Glue locations stay in the lake: s3://<lake bucket>/<plain path> only."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.aws_json import AwsError
from core.lake import LAKE_BUCKET
from queries.glue_locations import lake_key, lake_path, lake_uri


def test_lake_uris_name_lake_folders() -> None:
    assert lake_uri(LAKE_BUCKET) == "s3://tidelake-lake/"
    assert lake_uri(LAKE_BUCKET, "clickstream_events") == "s3://tidelake-lake/clickstream_events/"
    assert lake_uri("b", "/x/dt=2019-01-22/") == "s3://b/x/dt=2019-01-22/"


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        ("s3://tidelake-lake/", ""),
        ("s3://tidelake-lake", ""),
        ("s3://tidelake-lake/uploads/sales/", "uploads/sales"),
        ("s3://tidelake-lake/uploads/sales", "uploads/sales"),
        ("s3://tidelake-lake/x/page=%2Fa%20b/", "x/page=%2Fa%20b"),  # the sinks' escaped partition values
        ("s3://tidelake-lake/x/%2e%2e/", "x/%2e%2e"),  # never decoded: a folder named %2e%2e, as on S3
        ("s3://tidelake-lake/a..b/c.d/", "a..b/c.d"),
    ],
)
def test_keys_in_the_lake_bucket_are_read_literally(uri: str, key: str) -> None:
    assert lake_key(uri, LAKE_BUCKET) == key


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("s3://other-bucket/data/", "AccessDeniedException"),
        ("s3://tidelake-lake-2/data/", "AccessDeniedException"),
        ("s3://", "AccessDeniedException"),
        ("file:///etc/", "InvalidInputException"),
        ("/etc/passwd", "InvalidInputException"),
        ("hdfs://tidelake-lake/x/", "InvalidInputException"),
        ("S3://tidelake-lake/x/", "InvalidInputException"),
        ("s3a://tidelake-lake/x/", "InvalidInputException"),
        ("s3://tidelake-lake/../etc/", "InvalidInputException"),
        ("s3://tidelake-lake/x/../../etc/", "InvalidInputException"),
        ("s3://tidelake-lake/./x/", "InvalidInputException"),
        ("s3://tidelake-lake//etc/", "InvalidInputException"),
        ("s3://tidelake-lake/x\\..\\y/", "InvalidInputException"),
        ("s3://tidelake-lake/x\ny/", "InvalidInputException"),
        ("s3://tidelake-lake/x\x00/", "InvalidInputException"),
        ("s3://tidelake-lake/_sinks/_owners/", "InvalidInputException"),  # the sinks' own state
        ("s3://tidelake-lake/_sinks/", "InvalidInputException"),
        ("s3://tidelake-lake/_sinks", "InvalidInputException"),
        ("s3://tidelake-lake/x/.y.parquet.tmp", "InvalidInputException"),  # a file being written
    ],
)
def test_locations_outside_the_lake_are_refused(uri: str, code: str) -> None:
    with pytest.raises(AwsError) as caught:
        lake_key(uri, LAKE_BUCKET)
    assert caught.value.code == code


def test_a_location_through_a_symlink_is_refused(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    (lake / "real").mkdir(parents=True)
    outside.mkdir()
    (lake / "link").symlink_to(outside)
    assert lake_path("s3://tidelake-lake/real/new/", lake, LAKE_BUCKET) == lake / "real" / "new"
    assert lake_path("s3://tidelake-lake/", lake, LAKE_BUCKET) == lake
    for uri in ("s3://tidelake-lake/link/", "s3://tidelake-lake/link/x/"):
        with pytest.raises(AwsError) as caught:
            lake_path(uri, lake, LAKE_BUCKET)
        assert caught.value.code == "InvalidInputException"
