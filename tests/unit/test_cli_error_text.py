"""The CLI prints an error's message as written: square brackets in it are not rich markup."""

from __future__ import annotations

import subprocess
import sys


def test_an_error_message_keeps_its_square_brackets(tmp_path) -> None:
    missing = tmp_path / "x[anomaly].sql"
    done = subprocess.run(
        [sys.executable, "-m", "tidelake.cli", "stream", "run", "--sql", str(missing)],
        capture_output=True, text=True, timeout=120, env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(f"error: no KDA SQL program '{missing}': no such file")
