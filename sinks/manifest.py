"""Write-ahead manifests: how a delivery stream finishes, after a crash, the flush it had begun.

Before a flush writes any file, it records per Kafka partition which offsets it covers and which
files it will write: `<lake>/_sinks/<stream>/<topic>+<partition>.json`. The order of a flush is:

    1. write the manifests (atomic, fsynced)
    2. write the files (each atomic: temp name, fsync, rename)
    3. commit the offsets to Kafka
    4. delete the manifests

A restarted stream that finds a manifest whose range is not yet committed rolls it forward: it reads
the same offsets again, rewrites the files (same records -> same names, so a rename replaces a file
with its identical twin), deletes listed files it did not write again, then commits. A manifest
whose range is already committed is stale (a crash between 3 and 4) and is deleted. So each record
ends up in the lake exactly once, and readers only ever see complete files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.lake import state_dir, temp_name
from sinks.writer import fsync_dir, make_dirs


@dataclass
class Manifest:
    """One pending flush of one Kafka partition: offsets `start..end` (inclusive) and its files."""

    topic: str
    partition: int
    start: int
    end: int
    files: list[str] = field(default_factory=list)  # relative to the lake root

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


class ManifestStore:
    """The manifests of one delivery stream, in the lake's state folder."""

    def __init__(self, lake_root: Path, stream: str) -> None:
        self.lake_root = lake_root
        self.folder = state_dir(lake_root, stream)

    def path(self, topic: str, partition: int) -> Path:
        return self.folder / f"{topic}+{partition}.json"

    def write(self, manifest: Manifest) -> None:
        make_dirs(self.folder, root=self.lake_root)  # never through a link inside the lake
        final = self.path(manifest.topic, manifest.partition)
        temp = final.with_name(temp_name(final.name))
        with open(temp, "w") as out:
            out.write(manifest.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
        fsync_dir(self.folder)

    def read(self, topic: str, partition: int) -> Manifest | None:
        try:
            data = json.loads(self.path(topic, partition).read_text())
        except FileNotFoundError:
            return None
        return Manifest(**data)

    def delete(self, topic: str, partition: int) -> None:
        self.path(topic, partition).unlink(missing_ok=True)
