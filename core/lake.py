"""The lake's layout: where datasets, partitions and error records live (the S3 bucket's keys).

    <root>/<dataset>/dt=YYYY-MM-DD/hour=HH/<file>.parquet      delivered records (Hive style)
    <root>/_errors/<dataset>/<error-type>/dt=.../<file>         records that could not be delivered
    <root>/_sinks/<delivery-stream>/...                         the sinks' write-ahead manifests

A data file is named from where its first record came from, `<topic>+<partition>+<offset>.parquet`
(offset zero-padded to 20 digits), so a delivery stream that rewrites a batch after a crash lands on
the same name. Names starting with `.` or `_` are never data: readers skip them.

Sinks write this layout and queries discover it; both take the names from here.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: Top-level folder of error output (like Firehose's ErrorOutputPrefix); never a dataset itself.
ERRORS_DIR = "_errors"
#: Firehose-syntax prefix that tidelake uses by default: Hive partitions by event time.
DEFAULT_PREFIX = "dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"
#: Firehose's error output types that tidelake produces.
ERROR_TYPES = ("format-conversion-failed", "processing-failed", "activePartitionExceeded")
#: A dataset is a table name in the catalog: lower-case letters, digits and underscores.
DATASET_NAME_MAX = 63
DATASET_NAME = re.compile(rf"^[a-z][a-z0-9_]{{0,{DATASET_NAME_MAX - 1}}}$")
#: A partition folder's value when the record's value is NULL or empty (`code=__HIVE_DEFAULT_PARTITION__`),
#: as Hive names it; Athena and DuckDB read it back as NULL, and it never decides the column's type.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: Files that are still being written start with this and are ignored by readers.
IN_PROGRESS_PREFIX = "."
#: Top-level folder of the delivery streams' own state (write-ahead manifests); never a dataset.
STATE_DIR = "_sinks"
#: The owner record of a dataset a delivery stream writes: `<lake>/_sinks/_owners/<dataset>.owner`
#: (sinks/ownership.py writes them; the S3 face keeps those datasets read-only).
OWNERS_DIR = "_owners"
OWNER_SUFFIX = ".owner"
#: The S3 bucket the lake stands in for: the AWS APIs name a lake path `s3://tidelake-lake/<key>`
#: (Glue's table locations, Firehose's BucketARN `arn:aws:s3:::tidelake-lake`).
LAKE_BUCKET = "tidelake-lake"
#: Extension of every data and error file in the lake.
PARQUET_SUFFIX = ".parquet"
#: `<topic>+<partition>+<first offset>.parquet`; topics are [a-zA-Z0-9._-] so `+` separates safely.
DATA_FILE_NAME = re.compile(r"^(?P<topic>[a-zA-Z0-9._-]+)\+(?P<partition>\d+)\+(?P<offset>\d{20})\.parquet$")


def check_dataset_name(name: str) -> str:
    if not DATASET_NAME.match(name):
        msg = f"dataset name {name!r} must match {DATASET_NAME.pattern} (it becomes a table name)"
        raise ValueError(msg)
    return name


#: Characters of a topic's name kept in a dataset name that must be shortened (before its hash).
_KEPT_OF_LONG_NAME = 54


def dataset_for_topic(topic: str) -> str:
    """The default dataset of a topic: `analytics.page-views-1m` -> `page_views_1m`,
    `clickstream.events` -> `clickstream_events`.

    Any Kafka topic name (up to 249 characters of [a-zA-Z0-9._-]) gives a valid, distinct table
    name: one that starts with a digit or has no letter gets a `t_` prefix, and one longer than 63
    characters keeps its first 54 and ends with 8 hex digits of a hash of the whole topic name, so a
    stream subscribed by pattern never meets a topic it cannot name."""
    stem = re.sub(r"[^a-z0-9]+", "_", topic.removeprefix("analytics.").lower()).strip("_")
    if not stem[:1].isalpha():
        stem = f"t_{stem}".rstrip("_")
    if len(stem) > DATASET_NAME_MAX:
        digest = hashlib.sha1(topic.encode(), usedforsecurity=False).hexdigest()[:8]
        stem = f"{stem[:_KEPT_OF_LONG_NAME].rstrip('_')}_{digest}"
    return check_dataset_name(stem)


def dataset_dir(root: Path, dataset: str) -> Path:
    return root / check_dataset_name(dataset)


def error_dir(root: Path, dataset: str, error_type: str) -> Path:
    return root / ERRORS_DIR / check_dataset_name(dataset) / error_type


def is_visible_file(path: Path) -> bool:
    """Readers see only complete files: no temp files, no hidden names."""
    return not path.name.startswith((IN_PROGRESS_PREFIX, "_"))


def state_dir(root: Path, stream: str) -> Path:
    """Where the delivery stream `stream` keeps its write-ahead manifests."""
    return root / STATE_DIR / stream


def data_file_name(topic: str, partition: int, first_offset: int) -> str:
    """The deterministic name of a file whose first record is `topic[partition]@first_offset`."""
    return f"{topic}+{partition}+{first_offset:020d}{PARQUET_SUFFIX}"


def parse_data_file_name(name: str) -> tuple[str, int, int] | None:
    """`(topic, partition, first_offset)` of a name made by `data_file_name`, else None."""
    found = DATA_FILE_NAME.match(name)
    if found is None:
        return None
    return found["topic"], int(found["partition"]), int(found["offset"])


def temp_name(final_name: str) -> str:
    """The in-progress name of a file being written (hidden from readers until renamed)."""
    return f"{IN_PROGRESS_PREFIX}{final_name}.tmp"
