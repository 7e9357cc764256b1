"""Against a real `tidelake serve` on loopback (no token): a web page's cross-site POST can neither
reset the stack nor delete lake objects through S3, while boto3 still can; and reset itself is off
unless serve runs with --test-routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.aws_endpoints import aws_client, serve_process

pytestmark = pytest.mark.integration

DELETE_XML = b"<Delete><Object><Key>victim/a.txt</Key></Object></Delete>"
#: What `fetch(url, {method: "POST", mode: "no-cors", body})` on https://evil.example sends.
BROWSER = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}


@pytest.fixture
def serve(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    lake = tmp_path / "lake"
    (lake / "victim").mkdir(parents=True)
    (lake / "victim" / "a.txt").write_text("keep me")
    env = {
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIDELAKE_RUNTIME__STATE_DIR": str(tmp_path / "state"),
    }
    with serve_process(lake, tmp_path / "serve.log", env=env) as url:
        yield url, lake


def test_cross_site_reset_and_s3_delete_are_refused_and_boto3_still_deletes(serve: tuple[str, Path]) -> None:
    url, lake = serve
    reset = httpx.post(f"{url}/_tidelake/reset", content=b"{}", headers=BROWSER)
    delete = httpx.post(f"{url}/tidelake-lake?delete", content=DELETE_XML, headers=BROWSER)

    assert (reset.status_code, reset.json()["__type"]) == (403, "AccessDeniedException")
    assert delete.status_code == 403
    assert (lake / "victim" / "a.txt").read_text() == "keep me"

    off = httpx.post(f"{url}/_tidelake/reset", content=b"{}")  # as a test would, on a serve without the flag
    assert (off.status_code, off.json()["__type"]) == (404, "ResourceNotFoundException")
    assert "--test-routes" in off.json()["message"]
    assert (lake / "victim" / "a.txt").read_text() == "keep me"

    s3 = aws_client("s3", url)
    assert s3.get_object(Bucket="tidelake-lake", Key="victim/a.txt")["Body"].read() == b"keep me"
    s3.delete_objects(Bucket="tidelake-lake", Delete={"Objects": [{"Key": "victim/a.txt"}]})
    assert not (lake / "victim" / "a.txt").exists()
