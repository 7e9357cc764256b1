"""Parquet files that appear in the lake only complete: temp name, fsync, rename, fsync the folder.

pyarrow writes by default; fastparquet is selectable (DuckDB reads both to the same rows). A file
system error becomes `SinkWriteError`: the caller then commits nothing, so nothing is lost.

Nothing is written through a symbolic link inside the lake: given the lake's `root`, `make_dirs`
(which every file a sink writes goes through) refuses a folder between the root and the file that
is a link, or that resolves outside the root's real path, with `SinkWriteError` naming the folder
and the link's target. The root itself may be a link (users do that); only links inside it count.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import SinkWriteError
from core.lake import temp_name

ENGINES = ("pyarrow", "fastparquet")
COMPRESSIONS = ("snappy", "zstd", "gzip", "none")


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_folders(folders: set[Path]) -> None:
    """fsync each folder once (after `write_parquet(..., sync_folder=False)` into them)."""
    for folder in sorted(folders):
        try:
            fsync_dir(folder)
        except OSError as exc:
            msg = f"could not sync the folder {folder} ({exc.strerror or exc}); nothing was committed, the records will be delivered again — check the lake's file system"
            raise SinkWriteError(msg) from exc


def check_inside_lake(folder: Path, root: Path) -> None:
    """Raise SinkWriteError when a folder from `root` down to `folder` is a symbolic link, or
    resolves outside the real path of `root` (`root` itself may be a link). Folders that do not
    exist yet are fine: `make_dirs` creates them as real folders. A few `lstat` calls, against the
    writes and fsyncs of the file that follows: checked on every call, never cached, so a folder
    swapped for a link after a first write is refused too."""
    try:
        relative = folder.relative_to(root)
    except ValueError:
        relative = None
    if relative is None or ".." in relative.parts:
        msg = f"refusing to write {folder}: it is not inside the lake {root}; nothing was committed"
        raise SinkWriteError(msg)
    probe = root
    for part in relative.parts:
        probe = probe / part
        try:
            info = os.lstat(probe)
        except FileNotFoundError:
            break  # this and the folders under it do not exist yet
        except OSError as exc:
            msg = f"could not check the folder {probe} ({exc.strerror or exc}); nothing was committed"
            raise SinkWriteError(msg) from exc
        if stat.S_ISLNK(info.st_mode):
            msg = (
                f"refusing to write {folder}: {probe} is a symbolic link (to {_link_target(probe)}) "
                f"inside the lake {root}, and sinks never write through links; nothing was committed "
                "and the records will be delivered again — replace the link with a real folder"
            )
            raise SinkWriteError(msg)
    real_root = os.path.realpath(root)
    real = os.path.realpath(probe)
    if os.path.commonpath([real_root, real]) != real_root:  # a mount or a race: still outside
        msg = f"refusing to write {folder}: {probe} resolves to {real}, outside the lake {real_root}; nothing was committed"
        raise SinkWriteError(msg)


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def make_dirs(folder: Path, *, root: Path | None = None) -> None:
    """Create `folder` and its missing parents, fsyncing each parent so the new names survive a crash.
    With the lake's `root`, a folder on the way that is a link is refused first (`check_inside_lake`)."""
    if root is not None:
        check_inside_lake(folder, root)
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)
    if root is not None and missing:  # a link put in place of a folder while we created it
        check_inside_lake(folder, root)


def write_parquet(
    table: pa.Table,
    path: Path,
    *,
    engine: str = "pyarrow",
    compression: str = "snappy",
    row_group_records: int = 128 * 1024,
    sync_folder: bool = True,
    root: Path | None = None,
) -> int:
    """Write `table` to `path` atomically and durably; the size in bytes. Replaces an existing file.
    `sync_folder=False` leaves the fsync of the folder (which makes the rename durable) to the
    caller, who writes several files into it and syncs it once before relying on them. With the
    lake's `root`, a folder on the way that is a symbolic link is refused (SinkWriteError)."""
    temp = path.with_name(temp_name(path.name))
    try:
        make_dirs(path.parent, root=root)
        if engine == "fastparquet":
            _write_fastparquet(table, temp, compression, row_group_records)
            size = temp.stat().st_size
        else:
            # A native file, not a Python one: Arrow then writes without taking the GIL back for
            # every buffer (which, beside a busy consumer thread, made writes 4x slower).
            with pa.OSFile(str(temp), "wb") as out:
                pq.write_table(
                    table,
                    out,
                    compression=None if compression == "none" else compression,
                    row_group_size=row_group_records,
                )
                size = out.tell()
            _fsync_file(temp)
        os.replace(temp, path)
        if sync_folder:
            fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        msg = f"could not write {path} ({exc.strerror or exc}); nothing was committed, the records will be delivered again — check free space and permissions of the lake"
        raise SinkWriteError(msg) from exc
    return size


def _write_fastparquet(table: pa.Table, temp: Path, compression: str, row_group_records: int) -> None:
    import fastparquet  # imported on use: it pulls in pandas, which the default engine does not need

    frame = table.to_pandas()
    with warnings.catch_warnings():
        # fastparquet 2026.9 reads tz-aware columns through a pandas API that pandas 3 deprecates;
        # the values it writes are still correct (checked against pyarrow's files in the tests).
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        fastparquet.write(
            str(temp),
            frame,
            compression=None if compression == "none" else compression.upper(),
            row_group_offsets=row_group_records,
            write_index=False,
            stats=True,
        )
    _fsync_file(temp)


def _fsync_file(path: Path) -> None:
    """Make a closed file's contents durable (fsync through a fresh descriptor)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
