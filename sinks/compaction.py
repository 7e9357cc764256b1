"""Compaction: merge the small files of each lake partition into one, atomically for readers.

Frequent flushes (a short interval, many prefixes) leave many small files, which make every query
slower (Athena's advice is files of 128 MB or more). `compact` rewrites the files of a partition
folder as one file and swaps the folder in one step, so that a reader listing it sees either all
the old files or the merged one: never both (duplicates) and never neither (a gap).

The swap is Linux's `renameat2(RENAME_EXCHANGE)`, which exchanges two folders atomically:

    1. list the partition's files, then read the delivery streams' unfinished manifests (in this
       order: a sink writes its manifest before its files, so every in-flight file listed is known);
       write the merged file into a staging folder, `<lake>/_sinks/_compacting/<dataset>/<partition>`
       (on the lake's file system, outside the dataset's folder), hard-linking there every
       file that is not merged (in flight in a sink's manifest)
    2. exchange the two folders in one system call, unless a sink is writing a file into the folder
       right then (an in-progress `.name.tmp` is there): the folder is left for a later round
    3. move back any file a sink added to the old folder meanwhile (invisible for that moment);
       remove the old folder

Files listed in a delivery stream's unfinished manifest are never merged (the stream may rewrite
them). A sink that renames its file into the folder just as it is swapped fails its flush (nothing
is committed, the stream's next run delivers it again): compact closed partitions, e.g. yesterday's,
while sinks write today's (`sinks.compactor` decides which are closed). A query that had listed the
old files before the swap and opens them after it fails with "file not found" and can be run again
(the query engine does so once, by itself); it never returns wrong rows.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ConfigError, SinkWriteError
from core.lake import IN_PROGRESS_PREFIX, PARQUET_SUFFIX, STATE_DIR, dataset_dir, is_visible_file
from sinks.writer import check_inside_lake, fsync_dir, make_dirs, write_parquet

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
COMPACTED_PREFIX = "compacted-"
#: Under the lake's `_sinks/`: staging folders and per-dataset locks (`_`: never a delivery stream's name).
COMPACTING_DIR = "_compacting"


@dataclass(frozen=True)
class Compaction:
    """What compacting one partition folder did."""

    partition: str  # relative to the dataset, e.g. dt=2019-01-22/hour=00
    files_before: int
    files_after: int
    rows: int
    bytes_after: int


def exchange(first: Path, second: Path) -> None:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        msg = "compaction needs renameat2 (Linux, glibc 2.28+) to swap folders atomically; it is not available here"
        raise SinkWriteError(msg, retriable=False)
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if done != 0:
        code = ctypes.get_errno()
        msg = f"could not swap {first} with {second}: {os.strerror(code)}"
        raise SinkWriteError(msg) from OSError(code, os.strerror(code))


def pending_files(lake: Path) -> set[Path]:
    """Files listed in any delivery stream's unfinished manifest."""
    listed: set[Path] = set()
    for manifest in (lake / STATE_DIR).glob("*/*.json"):
        try:
            listed.update(lake / f for f in json.loads(manifest.read_text()).get("files", []))
        except (OSError, ValueError):
            continue
    return listed


def partition_folders(lake: Path, dataset: str, only: list[str] | None = None) -> list[Path]:
    """The folders of a dataset that hold data files, optionally only those under `only` prefixes."""
    root = dataset_dir(lake, dataset)
    if not root.is_dir():
        msg = f"no dataset {dataset!r} under {lake}; check the name (`tidelake catalog`) or --lake"
        raise ConfigError(msg)
    folders = sorted({p.parent for p in root.rglob(f"*{PARQUET_SUFFIX}") if _visible(p, root)})
    if only:
        wanted = [w.strip("/") for w in only]
        folders = [f for f in folders if any(_relative(f, root).startswith(w) for w in wanted)]
    return folders


def compact(
    lake: Path, dataset: str, only: list[str] | None = None, *, compression: str = "snappy"
) -> list[Compaction]:
    """Compact every partition folder of `dataset` that has two or more mergeable files."""
    return compact_folders(lake, dataset, partition_folders(lake, dataset, only), compression=compression)


def compact_folders(
    lake: Path, dataset: str, folders: list[Path], *, compression: str = "snappy"
) -> list[Compaction]:
    """Compact the given partition folders of `dataset` (each with two or more mergeable files);
    a folder that vanished meanwhile, or that a sink is writing into right now, is skipped."""
    root = dataset_dir(lake, dataset)
    results = []
    with _dataset_lock(lake, dataset):
        for folder in folders:
            check_inside_lake(folder, lake)  # never merge (read, swap, write) through a link
            result = _compact_folder(folder, root, lake, compression)
            if result is not None:
                results.append(result)
    return results


@contextmanager
def _dataset_lock(lake: Path, dataset: str) -> Iterator[None]:
    """One compaction of a dataset at a time, across processes (a `--watch` and a one-off run):
    two merging one folder at once would each swap in their merged file, and the second would move
    the first's back in as a file "added meanwhile" (every row twice)."""
    folder = lake / STATE_DIR / COMPACTING_DIR
    make_dirs(folder, root=lake)
    with open(folder / f"{dataset}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _data_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and is_visible_file(p) and p.suffix == PARQUET_SUFFIX
    )


def _being_written(folder: Path) -> bool:
    """A sink's file is in progress there (`write_parquet`'s temp name, renamed when complete)."""
    return any(p.name.startswith(IN_PROGRESS_PREFIX) and p.name.endswith(".tmp") for p in folder.iterdir())


def _compact_folder(folder: Path, root: Path, lake: Path, compression: str) -> Compaction | None:
    try:
        present = _data_files(folder)
    except FileNotFoundError:
        return None
    in_flight = pending_files(lake)  # after the listing: see step 1 of the module docstring
    merge = [p for p in present if p not in in_flight]
    if len(merge) < 2:
        return None
    table = pa.concat_tables([pq.read_table(p) for p in merge], promote_options="permissive")
    digest = hashlib.sha256("\n".join(p.name for p in merge).encode()).hexdigest()[:16]
    merged_name = f"{COMPACTED_PREFIX}{digest}{PARQUET_SUFFIX}"
    # outside the dataset's folder: a reader that globs it (`read_parquet('lake/ds/**/*.parquet')`
    # lists hidden folders too) never sees the merged file beside the old ones, nor a crash's leftovers
    staging = lake / STATE_DIR / COMPACTING_DIR / root.name / _relative(folder, root)
    shutil.rmtree(staging, ignore_errors=True)
    make_dirs(staging, root=lake)
    try:
        size = write_parquet(table, staging / merged_name, compression=compression, root=lake)
        for keep in present:
            if keep not in merge:
                os.link(keep, staging / keep.name)
        fsync_dir(staging)
        if _being_written(folder):
            return None  # a sink is delivering into this folder: not closed after all
        exchange(folder, staging)  # readers now see the merged file, never both sets
        merged = {p.name for p in merge}
        for late in staging.iterdir():  # files a sink renamed into the folder during the merge
            if late.name not in merged and not (folder / late.name).exists() and is_visible_file(late):
                os.replace(late, folder / late.name)
        fsync_dir(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    after = sum(1 for p in folder.iterdir() if p.is_file() and is_visible_file(p))
    return Compaction(_relative(folder, root), len(present), after, table.num_rows, size)


def _relative(folder: Path, root: Path) -> str:
    return folder.relative_to(root).as_posix()


def _visible(path: Path, root: Path) -> bool:
    return all(is_visible_file(Path(part)) for part in path.relative_to(root).parts)
