"""DNS rebinding and the token (issue 14, item 2): only known Host names are served, and a server
reachable from other machines never runs without a token."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from queries.api import create_app, is_loopback, known_hosts
from queries.engine import Engine
from queries.results import ResultStore
from queries.service import QueryService
from tests.unit.queries_lake import event, write_events

SERVE_TIMEOUT_S = 30.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[QueryService]:
    write_events(tmp_path / "lake", [event("2026-11-23T07:00:00", "v1", "/a")])
    with Engine(tmp_path / "lake") as engine:
        served = QueryService(engine, ResultStore(tmp_path / "results"))
        try:
            yield served
        finally:
            served.close()


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("localhost:8080", 200),
        ("127.0.0.1:8080", 200),
        ("[::1]:8080", 200),
        ("attacker.example", 400),  # a page whose DNS name was rebound to 127.0.0.1
        ("attacker.example:8080", 400),
        ("127.0.0.1.attacker.example", 400),
        ("serve:8080", 400),  # not known unless --allowed-host serve
    ],
)
def test_only_known_host_names_are_served(service: QueryService, host: str, status: int) -> None:
    with TestClient(create_app(service), base_url="http://localhost") as client:
        response = client.get("/api/catalog", headers={"Host": host})
        athena = client.post(
            "/", json={}, headers={"Host": host, "X-Amz-Target": "AmazonAthena.ListWorkGroups"}
        )
    assert (response.status_code, athena.status_code) == (status, status)
    if status == 400:
        assert response.text == "Invalid host header"


def test_an_allowed_host_is_served(service: QueryService) -> None:
    app = create_app(service, allowed_hosts=known_hosts("0.0.0.0", ["serve"]))
    with TestClient(app, base_url="http://serve:8080") as client:
        assert client.get("/api/catalog").status_code == 200
        assert client.get("/api/catalog", headers={"Host": "elsewhere"}).status_code == 400


def test_known_hosts_are_loopback_the_bound_address_and_the_extras() -> None:
    assert known_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "[::1]"]
    assert known_hosts("0.0.0.0", ["Serve", " "]) == ["127.0.0.1", "localhost", "[::1]", "serve"]
    assert known_hosts("192.168.1.5") == ["127.0.0.1", "localhost", "[::1]", "192.168.1.5"]
    assert known_hosts("fe80::1") == ["127.0.0.1", "localhost", "[::1]", "[fe80::1]"]
    assert [h for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost") if is_loopback(h)] == [
        "127.0.0.1",
        "127.0.0.2",
        "::1",
        "[::1]",
        "localhost",
    ]
    assert [h for h in ("0.0.0.0", "::", "192.168.1.5", "example.com") if is_loopback(h)] == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    write_events(tmp_path / "lake", [event("2026-11-23T07:00:00", "v1", "/a")])
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDELAKE_QUERY__")}
    env["TIDELAKE_QUERY__RESULTS_DIR"] = str(tmp_path / "results")
    command = [
        sys.executable,
        "-m",
        "tidelake.cli",
        "serve",
        "--port",
        str(port),
        "--lake",
        str(tmp_path / "lake"),
    ]
    with log.open("w") as out:
        server = subprocess.Popen([*command, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, port, log
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait(timeout=15)
                pytest.fail(f"tidelake serve did not listen on {port}: {log.read_text()}")
            time.sleep(0.1)


def _get(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_serve_off_loopback_generates_a_token_and_prints_it(tmp_path: Path) -> None:
    server, port, log = _serve(tmp_path, "--host", "0.0.0.0", "--allowed-host", "serve")
    try:
        printed = log.read_text()
        found = re.search(r"  token:   (\S+)\n  console: http://localhost:\d+/\?token=(\S+)\n", printed)
        assert found is not None, printed
        token = found.group(1)
        assert found.group(2) == token
        assert "serving Host names: 127.0.0.1, localhost, [::1], serve" in printed
        url = f"http://127.0.0.1:{port}/api/catalog"
        assert _get(url, {}) == 401
        assert _get(url, {"Authorization": "Bearer wrong"}) == 401
        assert _get(url, {"Authorization": f"Bearer {token}"}) == 200
        assert _get(url, {"Authorization": f"Bearer {token}", "Host": f"serve:{port}"}) == 200
        assert _get(url, {"Authorization": f"Bearer {token}", "Host": "attacker.example"}) == 400
        athena = boto3.client(
            "athena",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=token,
            aws_secret_access_key="unused",
        )
        assert [w["Name"] for w in athena.list_work_groups()["WorkGroups"]] == ["primary"]
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_serve_on_loopback_needs_no_token_and_prints_none(tmp_path: Path) -> None:
    server, port, log = _serve(tmp_path)
    try:
        assert "token" not in log.read_text()
        assert _get(f"http://127.0.0.1:{port}/api/catalog", {}) == 200
        assert _get(f"http://127.0.0.1:{port}/api/catalog", {"Host": "attacker.example"}) == 400
    finally:
        server.terminate()
        server.wait(timeout=15)
