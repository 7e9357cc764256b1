"""Dataset ownership: every dataset of a lake belongs to one delivery stream.

File names are deterministic (`<topic>+<partition>+<first offset>.parquet`): that is what makes a
rewrite after a crash land on the same file. Two delivery streams writing one dataset break it: a
stream with another consumer group reads the same topic in other offset ranges and writes other
rows under the same names, replacing files of the first (issue 13: after the demo, a second stream
from docs/sinks.md left hour 00 with 22,449 rows but only 8,072 distinct event ids). Firehose has
the same rule in its own way: an S3 prefix is a delivery stream's to write.

So the first delivery stream that writes a dataset claims it, and keeps it:

    <lake>/_sinks/_owners/<dataset>.owner           JSON: {"delivery_stream", "consumer_group", "claimed_at", "host", "pid"}
    <lake>/_sinks/_owners/_errors.<dataset>.owner   the dead letters of <dataset> (a `mode = "errors"` stream)

(`.owner`, not `.json`: `<lake>/_sinks/*/*.json` are the streams' write-ahead manifests.)

A stream is its name and its consumer group. The owner may run again at any time (a restart, after
a crash or kill -9: the record outlives the process), and may run as several copies in its one
consumer group, which share the partitions (Kafka's consumer group; each partition's files are
written by the member that holds it, and its write-ahead manifests are the stream's). Any other
stream, another name or another group, is refused with `ConfigError` (exit 2) before it writes
anything, with the owner's name and what to do instead. A claim is read and written under an
exclusive `fcntl.flock` of `<lake>/_sinks/_owners/claims.lock` (not a hidden name: the lake holds no
hidden files but a write in progress), so two streams starting at once cannot
both claim a dataset. `_sinks` and the names in it are never datasets (core/lake.py).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import ConfigError
from core.lake import ERRORS_DIR, OWNER_SUFFIX, OWNERS_DIR, STATE_DIR, temp_name
from sinks.writer import fsync_dir, make_dirs

LOCK_NAME = "claims.lock"


@dataclass(frozen=True)
class Owner:
    """Who owns a dataset: a delivery stream's name and consumer group (what makes it that stream),
    and, for the message of a refusal, when and by which process it was claimed."""

    delivery_stream: str
    consumer_group: str
    claimed_at: str = ""
    host: str = ""
    pid: int = 0

    def same_stream(self, other: Owner) -> bool:
        return (self.delivery_stream, self.consumer_group) == (other.delivery_stream, other.consumer_group)

    def describe(self) -> str:
        return f"delivery stream {self.delivery_stream!r} (consumer group {self.consumer_group!r})"


def owners_dir(lake: Path) -> Path:
    return lake / STATE_DIR / OWNERS_DIR


def owner_path(lake: Path, dataset: str, *, dead_letters: bool = False) -> Path:
    """The owner record of `dataset` (or of its dead letters, under `_errors/<dataset>/`)."""
    return owners_dir(lake) / f"{ERRORS_DIR + '.' if dead_letters else ''}{dataset}{OWNER_SUFFIX}"


def read_owner(path: Path) -> Owner | None:
    """The owner in `path`; None if there is none. A record that does not parse is a ConfigError:
    guessing would risk two writers."""
    try:
        data = json.loads(path.read_text())
        return Owner(
            delivery_stream=str(data["delivery_stream"]),
            consumer_group=str(data["consumer_group"]),
            claimed_at=str(data.get("claimed_at", "")),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = (
            f"the owner record {path} cannot be read ({exc.__class__.__name__}: {exc}); "
            "fix it or delete it if no other delivery stream writes that dataset"
        )
        raise ConfigError(msg) from exc


class DatasetClaims:
    """The datasets one delivery stream has claimed in one lake (thread-safe: the main thread claims
    at start, the writer thread when a topic matching the stream's pattern shows up later)."""

    def __init__(self, lake: Path, delivery_stream: str, consumer_group: str, *, dead_letters: bool = False):
        self.lake = lake
        self.dead_letters = dead_letters
        self.me = Owner(delivery_stream, consumer_group)
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, dataset: str) -> None:
        """Claim `dataset` for this stream, or raise ConfigError naming its owner."""
        if dataset in self._claimed:
            return
        with self._lock:
            if dataset in self._claimed:
                return
            folder = owners_dir(self.lake)
            make_dirs(folder, root=self.lake)  # never through a link inside the lake
            with (folder / LOCK_NAME).open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                path = owner_path(self.lake, dataset, dead_letters=self.dead_letters)
                owner = read_owner(path)
                if owner is None:
                    self._write(path)
                elif not owner.same_stream(self.me):
                    raise ConfigError(self._refusal(dataset, owner, path))
            self._claimed.add(dataset)

    def _write(self, path: Path) -> None:
        record = Owner(
            self.me.delivery_stream,
            self.me.consumer_group,
            claimed_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        temp = path.with_name(temp_name(path.name))
        with temp.open("w") as handle:
            handle.write(json.dumps(asdict(record), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
        fsync_dir(path.parent)

    def _refusal(self, dataset: str, owner: Owner, path: Path) -> str:
        if self.dead_letters:
            what = f"the dead letters of dataset {dataset!r} ({self.lake / ERRORS_DIR / dataset}) belong"
        else:
            what = f"dataset {dataset!r} ({self.lake / dataset}) belongs"
        since = f", since {owner.claimed_at}" if owner.claimed_at else ""
        return (
            f"{what} to {owner.describe()}{since}, and "
            f"{self.me.describe()} would overwrite its files: a dataset has one delivery stream. "
            f"Give this stream its own dataset (--dataset, or `dataset =` in its config) or its own "
            f"lake (--lake DIR); or run {owner.delivery_stream!r} itself (same name, same group) to continue it. "
            f"To hand the dataset over, stop {owner.delivery_stream!r} and delete {path}."
        )
