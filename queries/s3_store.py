"""Buckets over folders: S3's objects as the files of the lake (and of Athena's query results).

    store = BucketStore(Bucket("tidelake-lake", lake_root, guarded=True), etags)
    page = store.list(prefix="clickstream_events/", delimiter="/", max_keys=1000)

A key is a path below the bucket's folder: `clickstream_events/dt=2019-01-22/hour=00/x.parquet`.
What S3 allows in a key and a file system does not is refused with `InvalidArgument` (400): an
empty segment (`a//b`, a leading or trailing `/`), a segment `.` or `..`, a control character, a
segment over 255 bytes; a key over 1,024 bytes is `KeyTooLongError`. So is a segment starting
with `.` in a write: in the lake such names are files being written (`core.lake`), and readers
never see them (a read of one is `NoSuchKey`).

No key reaches a file outside its bucket, whatever its spelling: the key is split into names and
each is opened relative to the folder before it (`openat` with `O_NOFOLLOW`), so `..` never
reaches the kernel and a symbolic link anywhere in the lake (to a file or a folder, inside or out)
is not followed: it is not listed, and reading or writing through it (or onto it: a PUT never
replaces a link) is `NoSuchKey` or refused.
Only regular files are objects (no FIFOs, sockets or devices).

Writes are atomic: an object is written to a hidden `.<name>.<random>.tmp` beside its final name,
synced, then renamed over it, so a reader sees the old object or the new one, never a part; a
write that fails or is cut off leaves nothing visible. Multipart parts are staged outside the
buckets (`<state>/uploads/<upload id>/`), up to `max_staged_bytes` in all.

The lake bucket is guarded (`guarded=True`):
- `_sinks/` (the delivery streams' manifests and owner records, `core.lake.STATE_DIR`) is neither
  listed nor readable nor writable: `AccessDenied`.
- `_errors/` (the records delivery streams could not deliver, `core.lake.ERRORS_DIR`) is
  read-only whoever owns it: PutObject, multipart uploads and deletes there are `AccessDenied`.
- A dataset a delivery stream owns (`<lake>/_sinks/_owners/<dataset>.owner`, written by
  sinks/ownership.py; `_errors.<dataset>.owner` for its dead letters under `_errors/<dataset>/`) is
  read-only: PutObject, multipart uploads and deletes under it are `AccessDenied` (403), as AWS
  answers a write its bucket policy denies.
A bucket with `writable=False` (Athena's results) refuses every write with `AccessDenied`.

ETags are S3's: the MD5 of the bytes, in quotes, for an object written in one piece (and for every
file a sink wrote); `"<md5 of the parts' MD5s>-<part count>"` for one completed from a multipart
upload (AWS's "Checking object integrity" page). MD5s are computed on first use and kept in memory
by (device, inode, size, mtime); multipart ETags are also kept in `<state>/etags.json`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import threading
import zlib
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.lake import ERRORS_DIR, IN_PROGRESS_PREFIX, OWNER_SUFFIX, OWNERS_DIR, STATE_DIR
from queries.s3_xml import S3Error

#: S3's limits (the S3 user guide, "Naming objects" and "Multipart upload limits").
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_LIST_KEYS = 1000
#: Bytes staged by multipart uploads not yet completed, in all, by default.
DEFAULT_MAX_STAGED_BYTES = 2 * 1024 * 1024 * 1024
_CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ETAG_CACHE_ENTRIES = 200_000
#: Multipart ETags kept in `etags.json` (the oldest are dropped: their files were likely replaced).
_MULTIPART_ETAGS_KEPT = 100_000
#: What `Uploads.create` makes (token_urlsafe(24)); anything else is no upload of ours.
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass(frozen=True)
class Bucket:
    """A bucket: its name and folder; `writable` False makes it read-only; `guarded` applies the
    lake's rules (hidden `_sinks/`, datasets owned by delivery streams read-only); `only`, when set,
    is the pattern of the keys that are objects (the rest of the folder is not shown); `deletable`,
    the keys a read-only bucket still lets DeleteObject remove (CTAS results a client reads and then
    deletes, as awswrangler does)."""

    name: str
    root: Path
    writable: bool = True
    guarded: bool = False
    only: re.Pattern[str] | None = None
    deletable: re.Pattern[str] | None = None


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime_ns: int
    etag: str  # with its quotes, as S3 sends it

    @property
    def last_modified(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.mtime_ns / 1e9, tz=dt.UTC)


@dataclass
class ListPage:
    """One page of a listing: objects and common prefixes in key order, and where the next page
    starts (`next_marker`: the last key or prefix of this page, when `truncated`)."""

    contents: list[ObjectInfo] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_marker: str | None = None


def check_key(key: str, *, write: bool = False) -> list[str]:
    """The key's names, or `S3Error` (see the module docstring for what is refused)."""
    if not key:
        raise S3Error("InvalidArgument", "The key must not be empty.", key=key)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", f"Your key is too long (over {MAX_KEY_BYTES} bytes).", key=key)
    if _bad_name(key):
        raise S3Error("InvalidArgument", "tidelake keys cannot hold control characters.", key=key)
    names = key.split("/")
    for name in names:
        if name in ("", ".", ".."):
            msg = (
                f"tidelake stores objects as files, so a key cannot have the segment {name!r} "
                "(no '.' or '..', no leading, trailing or doubled '/')."
            )
            raise S3Error("InvalidArgument", msg, key=key)
        if len(name.encode()) > MAX_NAME_BYTES:
            msg = f"tidelake stores objects as files: each '/'-separated part of a key is at most {MAX_NAME_BYTES} bytes."
            raise S3Error("InvalidArgument", msg, key=key)
        if write and name.startswith(IN_PROGRESS_PREFIX):
            msg = "in the lake, names starting with '.' are files still being written; choose another name."
            raise S3Error("InvalidArgument", msg, key=key)
    return names


def md5_etag(digest: bytes) -> str:
    return f'"{digest.hex()}"'


def multipart_etag(part_etags: list[str]) -> str:
    """`"<md5 of the concatenated binary MD5s of the parts>-<count>"`."""
    joined = b"".join(bytes.fromhex(e.strip('"')) for e in part_etags)
    return f'"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_etags)}"'


class ETags:
    """ETags by file identity (device, inode, size, mtime): MD5s computed once and kept in memory,
    multipart ETags recorded when an upload completes and kept in `<state>/etags.json`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "etags.json"
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
        self._multipart: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            self._multipart = {str(k): str(v) for k, v in json.loads(self.path.read_text()).items()}

    @staticmethod
    def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def cached(self, st: os.stat_result) -> str | None:
        """The ETag of the file whose `stat` is `st`, if known without reading it."""
        ident = self._identity(st)
        with self._lock:
            return self._cache.get(ident) or self._multipart.get(_ident_text(ident))

    def of(self, fd: int, st: os.stat_result) -> str:
        """The ETag of the open regular file `fd` whose `fstat` is `st`."""
        known = self.cached(st)
        if known is not None:
            return known
        digest = hashlib.md5(usedforsecurity=False)
        offset = 0
        while chunk := os.pread(fd, _CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
        etag = md5_etag(digest.digest())
        self.remember(st, etag)
        return etag

    def remember(self, st: os.stat_result, etag: str, *, multipart: bool = False) -> None:
        ident = self._identity(st)
        with self._lock:
            self._cache[ident] = etag
            self._cache.move_to_end(ident)
            while len(self._cache) > _ETAG_CACHE_ENTRIES:
                self._cache.popitem(last=False)
            if multipart:
                self._multipart[_ident_text(ident)] = etag
                for stale in list(self._multipart)[: max(len(self._multipart) - _MULTIPART_ETAGS_KEPT, 0)]:
                    del self._multipart[stale]
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temp = self.path.with_name(f".{self.path.name}.tmp")
                temp.write_text(json.dumps(self._multipart))
                temp.replace(self.path)


def _ident_text(ident: tuple[int, int, int, int]) -> str:
    return ":".join(str(x) for x in ident)


class BodyChecks:
    """What a request says its body is (`Content-MD5`, `x-amz-checksum-crc32`), checked while the
    body streams by; `BadDigest` (400) on a mismatch, as S3 answers."""

    def __init__(self, content_md5: str | None = None, crc32: str | None = None) -> None:
        self.content_md5 = _b64(content_md5, "Content-MD5") if content_md5 else None
        self.crc32 = _b64(crc32, "x-amz-checksum-crc32") if crc32 else None
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._crc = 0
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        if self.crc32 is not None:
            self._crc = zlib.crc32(chunk, self._crc)
        self.size += len(chunk)

    def verify(self) -> None:
        if self.content_md5 is not None and self.content_md5 != self.md5.digest():
            raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
        if self.crc32 is not None and self.crc32 != self._crc.to_bytes(4, "big"):
            raise S3Error("BadDigest", "The CRC32 you specified did not match the calculated checksum.")


def _b64(text: str, header: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise S3Error("InvalidDigest", f"The {header} you specified was invalid.") from exc


class PendingObject:
    """An object being written: a hidden temp file in its final folder, renamed into place by
    `commit` (which syncs it first), removed by `discard`."""

    def __init__(self, dir_fd: int, name: str, on_commit: ETags) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.temp = f"{IN_PROGRESS_PREFIX}{name}.{secrets.token_hex(6)}.tmp"
        self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)  # fmt: skip
        self.etags = on_commit
        self.done = False

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]

    def commit(self, etag: str, *, multipart: bool = False) -> ObjectInfo:
        os.fsync(self.fd)
        st = os.fstat(self.fd)
        os.close(self.fd)
        try:
            os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except (IsADirectoryError, NotADirectoryError) as exc:
            self._remove_temp()
            msg = "tidelake stores objects as files: this key names a folder that holds other objects."
            raise S3Error("InvalidArgument", msg) from exc
        finally:
            self.done = True
        with contextlib.suppress(OSError):
            os.fsync(self.dir_fd)
        self.etags.remember(st, etag, multipart=multipart)
        os.close(self.dir_fd)
        return ObjectInfo(self.name, st.st_size, st.st_mtime_ns, etag)

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self._remove_temp()
        os.close(self.dir_fd)

    def _remove_temp(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.temp, dir_fd=self.dir_fd)


class BucketStore:
    """The objects of one bucket (thread-safe; every call opens what it needs)."""

    def __init__(self, bucket: Bucket, etags: ETags) -> None:
        self.bucket = bucket
        self.root = Path(os.path.realpath(bucket.root))
        self.etags = etags
        self._dirs_lock = threading.Lock()  # creating folders for a write vs. pruning them after a delete

    # -- rules ----------------------------------------------------------------------------------
    def _hidden_top(self, name: str) -> bool:
        return self.bucket.guarded and name == STATE_DIR

    def _shown(self, key: str) -> bool:
        return self.bucket.only is None or self.bucket.only.fullmatch(key) is not None

    def check_readable(self, key: str) -> list[str]:
        names = check_key(key)
        if self._hidden_top(names[0]):
            raise S3Error("AccessDenied", "Access Denied: _sinks/ holds the delivery streams' own state.", 403, key=key)  # fmt: skip
        return names

    def check_writable(self, key: str, *, deleting: bool = False) -> list[str]:
        """The key's names if this bucket lets `key` be written (or, `deleting`, deleted); else `S3Error`."""
        names = check_key(key, write=True)
        removable = deleting and self.bucket.deletable is not None and self.bucket.deletable.fullmatch(key)
        if not self.bucket.writable and not removable:
            raise S3Error("AccessDenied", f"Access Denied: bucket {self.bucket.name} is read-only.", 403, key=key)  # fmt: skip
        if self._hidden_top(names[0]):
            raise S3Error("AccessDenied", "Access Denied: _sinks/ holds the delivery streams' own state.", 403, key=key)  # fmt: skip
        if self.bucket.guarded and names[0] == ERRORS_DIR:
            msg = f"Access Denied: {ERRORS_DIR}/ holds the records delivery streams could not deliver; its objects are read-only."  # fmt: skip
            raise S3Error("AccessDenied", msg, 403, key=key)
        owned = self._owned()
        path = "/".join(names) + "/"
        prefix = next((p for p in sorted(owned) if path.startswith(p)), None)
        if prefix is not None:
            stream = _delivery_stream(self.root / STATE_DIR / OWNERS_DIR / owned[prefix])
            msg = (
                f"Access Denied: {prefix} is written by delivery stream {stream!r} "
                f"({self.bucket.name}/{STATE_DIR}/{OWNERS_DIR}/{owned[prefix]}); its objects are read-only. "
                "Write to another prefix."
            )
            raise S3Error("AccessDenied", msg, 403, key=key)
        return names

    def _owned(self) -> dict[str, str]:
        """Owned key prefix (`<dataset>/`, `_errors/<dataset>/`) -> its owner record's file name."""
        if not self.bucket.guarded:
            return {}
        try:
            names = os.listdir(self.root / STATE_DIR / OWNERS_DIR)
        except OSError:
            return {}
        owned = {}
        errors = f"{ERRORS_DIR}."
        for name in names:
            if not name.endswith(OWNER_SUFFIX) or name.startswith(IN_PROGRESS_PREFIX):
                continue
            dataset = name.removesuffix(OWNER_SUFFIX)
            if dataset.startswith(errors):
                owned[f"{ERRORS_DIR}/{dataset.removeprefix(errors)}/"] = name
            else:
                owned[f"{dataset}/"] = name
        return owned

    def owned_prefixes(self) -> list[str]:
        """The key prefixes (`<dataset>/`, `_errors/<dataset>/`) delivery streams own."""
        return sorted(self._owned())

    def owner_of(self, names: list[str]) -> str | None:
        """The owned prefix `names` falls under (the key itself or a folder above it), else None."""
        path = "/".join(names) + "/"
        return next((p for p in self.owned_prefixes() if path.startswith(p)), None)

    def check_bucket(self) -> None:
        """`NoSuchBucket` (404) unless the bucket's folder is there."""
        os.close(self._open_root())

    # -- folders --------------------------------------------------------------------------------
    def _open_root(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist.", 404, bucket=self.bucket.name) from exc  # fmt: skip

    def _open_dirs(self, names: Sequence[str], *, create: bool = False) -> int:
        """An fd of the folder `names` below the root, opened one name at a time without following
        links; `FileNotFoundError` when one is missing (or a link, or not a folder) unless `create`
        (which also makes the bucket's own folder: a lake no sink has written yet)."""
        if create and not self.root.exists():
            self.root.mkdir(parents=True, exist_ok=True)
        fd = self._open_root()
        try:
            for name in names:
                try:
                    next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                    next_fd = self._open_dir_strict(name, fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        if create:
                            msg = "tidelake stores objects as files: a part of this key is an object, not a folder."
                            raise S3Error("InvalidArgument", msg) from exc
                        raise FileNotFoundError(name) from exc
                    raise
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _open_dir_strict(name: str, parent: int) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            msg = "tidelake stores objects as files: a part of this key is an object, not a folder."
            raise S3Error("InvalidArgument", msg) from exc

    # -- read -----------------------------------------------------------------------------------
    def open(self, key: str) -> tuple[int, ObjectInfo]:
        """An fd of the object's file (the caller closes it) and its info; `NoSuchKey` (404)."""
        names = self.check_readable(key)
        missing = S3Error("NoSuchKey", "The specified key does not exist.", 404, key=key)
        if any(n.startswith(IN_PROGRESS_PREFIX) for n in names) or not self._shown(key):
            raise missing
        try:
            parent = self._open_dirs(names[:-1])
        except FileNotFoundError:
            raise missing from None
        try:
            fd = os.open(names[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        except OSError as exc:
            raise missing from exc
        finally:
            os.close(parent)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise missing
            return fd, ObjectInfo(key, st.st_size, st.st_mtime_ns, self.etags.of(fd, st))
        except BaseException:
            os.close(fd)
            raise

    def head(self, key: str) -> ObjectInfo:
        fd, info = self.open(key)
        os.close(fd)
        return info

    # -- list -----------------------------------------------------------------------------------
    def list(
        self, prefix: str = "", delimiter: str = "", start_after: str = "", max_keys: int = MAX_LIST_KEYS
    ) -> ListPage:
        """Objects whose key starts with `prefix`, after `start_after`, in UTF-8 byte order (S3's
        ListObjectsV2), at most `max_keys` (objects and common prefixes together, capped at 1,000).
        With a `delimiter`, keys holding it after the prefix are rolled up into one common prefix
        (`prefix` + up to and including the delimiter), listed once; a common prefix equal to
        `start_after` is not listed again (resuming after a page that ended with it, as S3's v1
        NextMarker does), one that holds keys after `start_after` is."""
        page = ListPage()
        max_keys = min(max_keys, MAX_LIST_KEYS)
        if max_keys <= 0:
            return page
        last_prefix: str | None = None
        for key, fd_stat in self._walk(prefix, start_after, delimiter == "/"):
            rolled = None
            if delimiter:
                at = key.find(delimiter, len(prefix))
                if at >= 0:
                    rolled = key[: at + len(delimiter)]
            if rolled is not None:
                if rolled in (last_prefix, start_after):
                    continue  # listed already (in this page, or as the last of the page before)
                if len(page.contents) + len(page.prefixes) == max_keys:
                    page.truncated = True
                    break
                page.prefixes.append(rolled)
                last_prefix = rolled
                continue
            if len(page.contents) + len(page.prefixes) == max_keys:
                page.truncated = True
                break
            info = self._info(key, fd_stat)
            if info is not None:
                page.contents.append(info)
        if page.truncated:
            last_key = page.contents[-1].key if page.contents else ""
            last_pre = page.prefixes[-1] if page.prefixes else ""
            page.next_marker = max(last_key, last_pre)
        return page

    def _info(self, key: str, where: tuple[int, str, os.DirEntry[str]]) -> ObjectInfo | None:
        parent, name, entry = where
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None  # gone since it was listed
        known = self.etags.cached(st)
        if known is not None:
            return ObjectInfo(key, st.st_size, st.st_mtime_ns, known) if stat.S_ISREG(st.st_mode) else None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        except OSError:
            return None  # gone since it was listed
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            return ObjectInfo(key, st.st_size, st.st_mtime_ns, self.etags.of(fd, st))
        finally:
            os.close(fd)

    def _walk(
        self, prefix: str, start_after: str, one_level: bool
    ) -> Iterator[tuple[str, tuple[int, str, os.DirEntry[str]]]]:
        """`(key, (parent fd, name))` of every object under `prefix` after `start_after`, in key
        order. Folders that cannot hold such keys are not opened. With `one_level` (delimiter `/`),
        a folder past the prefix yields only its first object (enough to roll it up)."""
        try:
            root = self._open_root()
        except S3Error:
            return
        try:
            yield from self._walk_dir(root, "", prefix, start_after, one_level)
        finally:
            os.close(root)

    def _walk_dir(
        self, fd: int, base: str, prefix: str, start_after: str, one_level: bool
    ) -> Generator[tuple[str, tuple[int, str, os.DirEntry[str]]], None, None]:
        entries = []
        with os.scandir(fd) as scan:
            for entry in scan:
                name = entry.name
                if name.startswith(IN_PROGRESS_PREFIX) or (not base and self._hidden_top(name)):
                    continue
                if _bad_name(name):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        entries.append((f"{base}{name}/", name, True, entry))
                    elif entry.is_file(follow_symlinks=False):
                        entries.append((f"{base}{name}", name, False, entry))
                except OSError:
                    continue
        entries.sort(key=lambda e: e[0].encode())
        for key, name, is_dir, entry in entries:
            if not is_dir:
                if key.startswith(prefix) and key > start_after and self._shown(key):
                    yield key, (fd, name, entry)
                continue
            # key is "<folder>/": every key below starts with it
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if not (start_after.startswith(key) or key > start_after):
                continue  # every key below sorts before start_after
            try:
                child_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue
            try:
                below = self._walk_dir(child_fd, key, prefix, start_after, one_level)
                if one_level and len(key) > len(prefix):
                    first = next(below, None)  # the folder rolls up into one common prefix
                    below.close()
                    if first is not None:
                        yield first
                else:
                    yield from below
            finally:
                os.close(child_fd)

    # -- write ----------------------------------------------------------------------------------
    def begin_put(self, key: str) -> PendingObject:
        """A hidden temp file beside `key`'s final name (folders created as needed); refusals first."""
        names = self.check_writable(key)
        with self._dirs_lock:
            parent = self._open_dirs(names[:-1], create=True)
            try:
                _refuse_link(parent, names[-1], key)
                return PendingObject(parent, names[-1], self.etags)
            except BaseException:
                os.close(parent)
                raise

    def abandon(self, pending: PendingObject, key: str) -> None:
        """Discard a write that did not complete, and the folders it created that are left empty."""
        pending.discard()
        self._prune(key.split("/")[:-1])

    def delete(self, key: str) -> None:
        """Remove the object (none there is no error, as on S3); then remove the folders above it
        that it leaves empty, up to the bucket's top."""
        names = self.check_writable(key, deleting=True)
        try:
            parent = self._open_dirs(names[:-1])
        except FileNotFoundError:
            return
        try:
            try:
                st = os.stat(names[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISREG(st.st_mode):
                return  # a folder, a link or a device is not an object
            with contextlib.suppress(FileNotFoundError):
                os.unlink(names[-1], dir_fd=parent)
        finally:
            os.close(parent)
        self._prune(names[:-1])

    def _prune(self, folders: Sequence[str]) -> None:
        with self._dirs_lock:
            for depth in range(len(folders), 0, -1):
                try:
                    parent = self._open_dirs(folders[: depth - 1])
                except (FileNotFoundError, S3Error):
                    return
                try:
                    os.rmdir(folders[depth - 1], dir_fd=parent)
                except OSError:
                    return  # not empty (or gone): stop
                finally:
                    os.close(parent)


#: Characters no key may hold here: control characters (XML 1.0 cannot carry most of them) and the
#: surrogates Python uses for file names that are not UTF-8.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _refuse_link(parent: int, name: str, key: str) -> None:
    """`InvalidArgument` when `name` in the folder `parent` is a symlink: a write would replace the link."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        msg = "tidelake does not follow or replace symbolic links: this key is a link in the lake."
        raise S3Error("InvalidArgument", msg, key=key)


def _delivery_stream(record: Path) -> str:
    """The delivery stream named in an owner record (sinks/ownership.py's JSON), or "unknown"."""
    try:
        return str(json.loads(record.read_text())["delivery_stream"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _bad_name(name: str) -> bool:
    """A name no key can spell (see `check_key`): refused in keys, skipped in listings."""
    return _BAD_CHARS.search(name) is not None


# -- multipart uploads ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    mtime_ns: int
    path: Path


class PendingPart:
    """One part being staged: a hidden temp file, renamed to `part-<number>-<md5>` by `commit`
    (an earlier part of the same number is then removed: the last one uploaded counts)."""

    def __init__(self, folder: Path, number: int) -> None:
        self.folder = folder
        self.number = number
        self.temp = folder / f".part-{number:05d}.{secrets.token_hex(6)}.tmp"
        self.handle = self.temp.open("xb")

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)

    def commit(self, md5_hex: str) -> str:
        self.handle.close()
        final = self.folder / f"part-{self.number:05d}-{md5_hex}"
        for old in self.folder.glob(f"part-{self.number:05d}-*"):
            if old != final:
                old.unlink(missing_ok=True)
        self.temp.replace(final)
        return f'"{md5_hex}"'

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        self.temp.unlink(missing_ok=True)


class Uploads:
    """Multipart uploads staged in `<state>/uploads/<upload id>/` (`upload.json` with bucket and
    key, one file per part), at most `max_staged_bytes` staged in all: a part that would pass it is
    refused with `EntityTooLarge` until uploads complete or are aborted."""

    def __init__(self, state_dir: Path, max_staged_bytes: int = DEFAULT_MAX_STAGED_BYTES) -> None:
        self.folder = state_dir / "uploads"
        self.max_staged_bytes = max_staged_bytes
        self._lock = threading.Lock()
        self._reserved = 0

    def create(self, bucket: str, key: str) -> str:
        upload_id = secrets.token_urlsafe(24)
        folder = self.folder / upload_id
        folder.mkdir(parents=True)
        (folder / "upload.json").write_text(
            json.dumps({"bucket": bucket, "key": key, "initiated": dt.datetime.now(dt.UTC).isoformat()})
        )
        return upload_id

    def _folder(self, bucket: str, key: str, upload_id: str) -> Path:
        missing = S3Error(
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            404,
            upload_id=upload_id,
        )
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise missing
        folder = self.folder / upload_id
        try:
            meta = json.loads((folder / "upload.json").read_text())
        except (OSError, ValueError):
            raise missing from None
        if meta.get("bucket") != bucket or meta.get("key") != key:
            raise missing
        return folder

    def staged_bytes(self) -> int:
        total = 0
        with contextlib.suppress(OSError):
            for upload in self.folder.iterdir():
                with contextlib.suppress(OSError):
                    total += sum(p.stat().st_size for p in upload.iterdir() if p.name.startswith("part-"))
        return total

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Room for a part of `size` bytes (its declared Content-Length), or `EntityTooLarge`."""
        with self._lock:
            if self.staged_bytes() + self._reserved + size > self.max_staged_bytes:
                msg = (
                    f"Your proposed upload exceeds what tidelake stages for multipart uploads "
                    f"({self.max_staged_bytes:,} bytes in all); complete or abort other uploads first."
                )
                raise S3Error("EntityTooLarge", msg)
            self._reserved += size
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= size

    def put_part(self, bucket: str, key: str, upload_id: str, number: int) -> PendingPart:
        """A part being written: staged as `part-<number>-<md5>` once `commit` is called."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.")  # fmt: skip
        return PendingPart(self._folder(bucket, key, upload_id), number)

    def parts(self, bucket: str, key: str, upload_id: str) -> list[Part]:
        """The staged parts, by number (the last one written of each number)."""
        folder = self._folder(bucket, key, upload_id)
        found: dict[int, Part] = {}
        for path in folder.glob("part-*"):
            number, _, md5 = path.name.removeprefix("part-").partition("-")
            with contextlib.suppress(OSError, ValueError):
                st = path.stat()
                part = Part(int(number), st.st_size, f'"{md5}"', st.st_mtime_ns, path)
                if part.number not in found or found[part.number].mtime_ns < part.mtime_ns:
                    found[part.number] = part
        return [found[n] for n in sorted(found)]

    def complete(
        self, store: BucketStore, key: str, upload_id: str, chosen: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Join the `chosen` parts (number, ETag), in ascending order, into the object `key`."""
        folder = self._folder(store.bucket.name, key, upload_id)
        store.check_writable(key)
        if not chosen:
            raise S3Error("MalformedXML", "You must specify at least one part.")
        numbers = [n for n, _ in chosen]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.")  # fmt: skip
        staged = {p.number: p for p in self.parts(store.bucket.name, key, upload_id)}
        for index, (number, etag) in enumerate(chosen):
            part = staged.get(number)
            if part is None or part.etag.strip('"') != etag.strip('"'):
                raise S3Error("InvalidPart", "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.", upload_id=upload_id)  # fmt: skip
            if index < len(chosen) - 1 and part.size < MIN_PART_BYTES:
                raise S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size: each part but the last must be at least 5 MiB.")  # fmt: skip
        pending = store.begin_put(key)
        try:
            for number, _ in chosen:
                with staged[number].path.open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        pending.write(chunk)
            info = pending.commit(multipart_etag([staged[n].etag for n, _ in chosen]), multipart=True)
        except BaseException:
            store.abandon(pending, key)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        return ObjectInfo(key, info.size, info.mtime_ns, info.etag)

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        shutil.rmtree(self._folder(bucket, key, upload_id), ignore_errors=True)
