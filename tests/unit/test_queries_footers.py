"""Parquet footers are read once per version of a file (queries.catalog.read_footer)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from queries import catalog


def test_a_footer_is_read_once_per_version_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real = pq.ParquetFile

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(catalog.pq, "ParquetFile", counting)
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"page": ["/a", "/b"]}), path)
    first = catalog.read_footer(path)
    assert catalog.read_footer(path) == first
    assert (first[0].names, first[1], len(opened)) == (["page"], 2, 1)

    pq.write_table(pa.table({"page": ["/a"], "views": [3]}), path)  # the same name, a new version
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    schema, rows = catalog.read_footer(path)
    assert (schema.names, str(schema.field("views").type), rows, len(opened)) == (
        ["page", "views"],
        "int64",
        1,
        2,
    )
