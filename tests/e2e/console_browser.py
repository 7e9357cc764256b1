"""Helpers for the browser tests: a real `tidelake serve` process and Debian's Chromium.

Playwright drives /usr/bin/chromium (installed by `tools/install-system-deps.sh chromium`); it never
downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str:
    """Debian's Chromium; the suite fails (never skips) when it is missing."""
    found = (
        os.environ.get("TIDELAKE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        msg = "Chromium is needed for the console tests: run `make install` (it installs Debian's chromium) or set TIDELAKE_CHROMIUM"
        raise RuntimeError(msg)
    return found


@contextmanager
def serve(lake: Path, port: int, bootstrap: str, log: Path, token: str | None = None) -> Iterator[str]:
    """`tidelake serve` on `port` (with `--token` when given), ready when `/openapi.json` answers."""
    env = {**os.environ, "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
    command = [sys.executable, "-m", "tidelake.cli", "serve", "--port", str(port), "--lake", str(lake)]
    command += ["--token", token] if token else []
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=lake.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/openapi.json", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    msg = f"tidelake serve did not start (exit {process.poll()}):\n{log.read_text()[-2000:]}"
                    raise RuntimeError(msg) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
