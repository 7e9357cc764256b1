"""Test helpers for the AWS endpoint: serve an ASGI app with uvicorn in a thread on a free port,
and make boto3 clients that talk to it.

    with endpoint_in_thread(aws_endpoint(stand_in_app, {...}, token=TOKEN)) as url:
        kinesis = aws_client("kinesis", url, key=TOKEN)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import uvicorn
from botocore.config import Config
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


async def stand_in_query_app(scope: Scope, receive: Receive, send: Send) -> None:
    """What the endpoint falls back to in tests that do not need queries.api's app."""
    await JSONResponse({"answered_by": "query app"})(scope, receive, send)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def endpoint_in_thread(app: ASGIApp, start_timeout_s: float = 20.0) -> Iterator[str]:
    """`app` served on 127.0.0.1 at a free port until the block ends; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        assert time.monotonic() < deadline, "the endpoint did not start"
        assert thread.is_alive(), "the endpoint's server stopped while starting"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def aws_client(service: str, endpoint: str, *, key: str = "test", validate: bool = True, attempts: int = 1):
    """A boto3 client for `service` at `endpoint`, with `key` as its access key id (the token)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="x",
        config=Config(parameter_validation=validate, retries={"max_attempts": attempts}),
    )


@contextlib.contextmanager
def serve_process(
    lake: Path, log_path: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 30.0
) -> Iterator[str]:
    """`tidelake serve --lake LAKE ARGS` as a child process on a free port until the block ends
    (then SIGTERM, as a user's Ctrl-C); yields its URL. Fails the test with serve's log if it does
    not listen within `timeout_s`."""
    port = free_port()
    command = [sys.executable, "-m", "tidelake.cli", "serve", "--port", str(port), "--lake", str(lake), *args]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"tidelake serve did not listen on {port}: {log_path.read_text()}")
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=60)


#: The AWS CLI installed beside this Python (awscli, in the dev extra).
AWS_CLI = str(Path(sys.executable).with_name("aws"))


def aws_cli_env(key: str = "test", **more: str) -> dict[str, str]:
    """An environment for the AWS CLI in a test: `key` as its access key id (the token), region
    us-east-1, and no user config or credentials files; `more` adds or overrides variables."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **more,
    }
