"""The lake's layout: where datasets, partitions and error records live (the S3 bucket's keys).

    <root>/<dataset>/dt=YYYY-MM-DD/hour=HH/<file>.parquet      delivered records (Hive style)
    <root>/_errors/<dataset>/<error-type>/dt=.../<file>         records that could not be delivered

Sinks write this layout and queries discover it; both take the names from here.
"""

from __future__ import annotations

import re
from pathlib import Path

#: Top-level folder of error output (like Firehose's ErrorOutputPrefix); never a dataset itself.
ERRORS_DIR = "_errors"
#: Firehose-syntax prefix that tidelake uses by default: Hive partitions by event time.
DEFAULT_PREFIX = "dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"
#: Firehose's error output types that tidelake produces.
ERROR_TYPES = ("format-conversion-failed", "processing-failed", "activePartitionExceeded")
#: A dataset is a table name in the catalog: lower-case letters, digits and underscores.
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Files that are still being written start with this and are ignored by readers.
IN_PROGRESS_PREFIX = "."


def check_dataset_name(name: str) -> str:
    if not DATASET_NAME.match(name):
        msg = f"dataset name {name!r} must match {DATASET_NAME.pattern} (it becomes a table name)"
        raise ValueError(msg)
    return name


def dataset_for_topic(topic: str) -> str:
    """The default dataset of a topic: `analytics.page-views-1m` -> `page_views_1m`,
    `clickstream.events` -> `clickstream_events`."""
    stem = topic.removeprefix("analytics.")
    return check_dataset_name(re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_"))


def dataset_dir(root: Path, dataset: str) -> Path:
    return root / check_dataset_name(dataset)


def error_dir(root: Path, dataset: str, error_type: str) -> Path:
    return root / ERRORS_DIR / check_dataset_name(dataset) / error_type


def is_visible_file(path: Path) -> bool:
    """Readers see only complete files: no temp files, no hidden names."""
    return not path.name.startswith((IN_PROGRESS_PREFIX, "_"))
