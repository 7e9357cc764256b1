"""A browser's write from another site is refused before any handler runs; AWS clients (no Origin,
no Sec-Fetch-Site) and the console's own same-origin requests pass."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from tidelake.cross_site import CrossSiteWriteGuard

calls: list[str] = []


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    calls.append(scope["method"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


@pytest.fixture
def client() -> TestClient:
    calls.clear()
    return TestClient(CrossSiteWriteGuard(inner), base_url="http://127.0.0.1:8080")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:3000"},  # another local web app is another origin
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_browsers_cross_site_write_is_refused_before_the_app(client: TestClient, headers: dict) -> None:
    answer = client.post("/_tidelake/reset", content=b"{}", headers={"Content-Type": "text/plain", **headers})
    assert answer.status_code == 403
    assert answer.json()["__type"] == "AccessDeniedException"
    assert answer.json()["message"].startswith("refused a cross-site write: ")
    assert calls == []


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {}),  # boto3, the AWS CLI, curl
        ("POST", {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}),  # the console
        ("DELETE", {"Sec-Fetch-Site": "none"}),  # typed into the browser by the user
        ("GET", {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}),  # a read: unreadable
    ],
)
def test_clients_and_same_origin_requests_pass(client: TestClient, method: str, headers: dict) -> None:
    answer = client.request(method, "/", headers=headers)
    assert (answer.status_code, answer.text, calls) == (200, "done", [method])
