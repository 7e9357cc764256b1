"""Where the agent is in the file it follows: file identity, byte offset, line number.

Like the Kinesis Agent's checkpoint store (one row per flow and file: file id, offset), kept as a
small JSON file written atomically (temp file, fsync, rename), so a crash leaves the old or the new
checkpoint, never half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import ConfigError


@dataclass(frozen=True)
class FileId:
    """A file's identity across renames (device + inode), like Java's `fileKey`."""

    device: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileId:
        return cls(stat.st_dev, stat.st_ino)


@dataclass(frozen=True)
class Position:
    """Everything before `offset` (and up to line `line_no`) of file `file_id` has been acknowledged."""

    path: str
    file_id: FileId
    offset: int
    line_no: int


class Checkpoint:
    """A JSON file holding one `Position`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Position | None:
        try:
            data = json.loads(self.path.read_text())
            return Position(
                data["path"], FileId(**data["file_id"]), int(data["offset"]), int(data["line_no"])
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"cannot read the checkpoint {self.path} ({exc}); fix or delete it to start from the file's beginning"
            raise ConfigError(msg) from exc

    def save(self, position: Position) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        with open(temp, "w") as out:
            json.dump(asdict(position), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)
