"""Producer commands refuse bad usage with exit code 2 and a message that says what to do, before any broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "tidelake.cli"]
ZANBIL = "data/zanbil-access-10k/access-10k.log"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", ZANBIL, "--speed", "2", "--rate", "5"], "--speed and --rate exclude each other"),
        (["replay", ZANBIL, "--speed", "0"], "--speed must be more than 0"),
        (["replay", "no/such/file.log", "--max-speed"], "no file at no/such/file.log"),
        (["replay", ZANBIL, "--format", "xml"], "unknown format 'xml'"),
        (["replay", ZANBIL, "--key-field", "ip"], "--key-field 'ip' is not a clickstream field"),
        (["replay", ZANBIL, "--time-field", "ts"], "--time-field is for csv/jsonl"),
    ],
)
def test_bad_replay_usage_exits_2_with_a_hint(args: list[str], message: str) -> None:
    # An address where nothing listens: the command must fail on its flags before trying it.
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())
    assert done.stdout == ""
