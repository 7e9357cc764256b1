"""`tidelake query` reads the Glue tables serve keeps (CREATE EXTERNAL TABLE through Athena's API),
read-only, with the same rows as Athena's API gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_athena_ddl import LAKE, SALES_CSV, SALES_DDL, Stack

pytestmark = pytest.mark.integration


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDELAKE_RUNTIME__STATE_DIR": str(root / "state")}
    command = [
        sys.executable,
        "-m",
        "tidelake.cli",
        "query",
        *args,
        "--lake",
        str(root / "lake"),
        "--format",
        "json",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


def _state(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in sorted((root / "state").rglob("*")):
        if path.is_file():
            info = path.stat()
            found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


def test_the_cli_reads_glue_tables_as_athena_does(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        stack.s3.put_object(Bucket=LAKE, Key="uploads/sales/sales.csv", Body=SALES_CSV)
        stack.ok("CREATE DATABASE uploads")
        stack.ok(SALES_DDL)
        sql = "SELECT id, item, amount, sold_on FROM uploads.sales ORDER BY id"
        athena = stack.ok(sql)
    finally:
        stack.close()  # as after `tidelake down`: the CLI opens the catalog serve left
    before = _state(tmp_path)
    done = _cli(tmp_path, sql)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["columns"] == athena[0]
    as_text = [[None if v is None else str(v) for v in row.values()] for row in answer["rows"]]
    assert (
        as_text
        == athena[1:]
        == [
            ["1", "apple", "2.50", "2026-11-29"],
            ["2", "pear", None, "2026-11-30"],
            ["3", "plum", "1.25", None],
        ]
    )
    # a bare name in the database --database names, as with QueryExecutionContext.Database
    bare = _cli(tmp_path, "SELECT count(*) AS n FROM sales", "--database", "uploads")
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout)["rows"] == [{"n": 3}]
    assert _state(tmp_path) == before  # read-only: nothing in serve's state folder was made or changed


def test_without_a_catalog_the_cli_still_reads_the_lake(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    done = _cli(tmp_path, "SELECT 1 AS one")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == [{"one": 1}]
    assert not (tmp_path / "state" / "glue").exists()
