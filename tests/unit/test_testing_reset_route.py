"""serve's test routes (`POST /_tidelake/<name>`) obey the endpoint's rules, and a reset never
deletes outside the lake, links included. No broker: the routes' dispatch and the lake's emptying."""

from __future__ import annotations

import httpx
import pytest

from core.aws_json import parse_request
from tests.aws_endpoints import endpoint_in_thread, stand_in_query_app
from tidelake.aws_endpoint import aws_endpoint
from tidelake.aws_services import FlushInput, ResetInput, _empty_folder

TOKEN = "s3cret"


def _admin():
    return {
        "reset": lambda body: {"kept": parse_request(ResetInput, body or b"{}").KeepStreams},
        "flush": lambda body: {"asked": parse_request(FlushInput, body).DeliveryStreamName},
    }


@pytest.fixture(scope="module")
def url():
    with endpoint_in_thread(aws_endpoint(stand_in_query_app, {}, token=TOKEN, admin=_admin())) as served:
        yield served


def _post(url: str, route: str, body: bytes, token: str | None = TOKEN, host: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if host:
        headers["Host"] = host
    return httpx.post(f"{url}/_tidelake/{route}", content=body, headers=headers)


def test_reset_and_flush_answer_json_with_the_token(url):
    assert _post(url, "reset", b'{"KeepStreams": ["a"]}').json() == {"kept": ["a"]}
    assert _post(url, "reset", b"").json() == {"kept": []}
    assert _post(url, "flush", b'{"DeliveryStreamName": "orders"}').json() == {"asked": "orders"}


def test_a_test_route_without_the_token_is_refused_like_any_action(url):
    answer = _post(url, "reset", b"{}", token=None)
    assert (answer.status_code, answer.json()["__type"]) == (400, "UnrecognizedClientException")
    answer = _post(url, "reset", b"{}", token="wrong")
    assert (answer.status_code, answer.json()["__type"]) == (400, "UnrecognizedClientException")


def test_a_test_route_for_an_unknown_host_is_refused(url):
    answer = _post(url, "reset", b"{}", host="evil.example")
    assert answer.status_code == 400
    assert answer.text == "Invalid host header"


def test_malformed_bodies_get_aws_400_shapes_never_a_500(url):
    cases = {
        ("reset", b"not json"): "SerializationException",
        ("reset", b'{"KeepStreams": "x"}'): "SerializationException",
        ("flush", b"{}"): "ValidationException",
        ("flush", b'{"DeliveryStreamName": "o", "TimeoutSeconds": -1}'): "ValidationException",
        ("nothing", b"{}"): "UnknownOperationException",
    }
    seen = {}
    for (route, body), _ in cases.items():
        answer = _post(url, route, body)
        seen[(route, body)] = (answer.status_code, answer.json()["__type"])
    assert seen == {key: (400, code) for key, code in cases.items()}


def test_a_get_on_a_test_route_is_not_a_reset(url):
    assert httpx.get(f"{url}/_tidelake/reset", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {
        "answered_by": "query app"
    }


def test_emptying_the_lake_unlinks_links_and_never_follows_them(tmp_path):
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    (lake / "orders" / "dt=2026-01-01").mkdir(parents=True)
    (lake / "orders" / "dt=2026-01-01" / "a.parquet").write_bytes(b"x")
    (lake / "_sinks").mkdir()
    outside.mkdir()
    (outside / "keep.parquet").write_bytes(b"mine")
    (lake / "linked").symlink_to(outside, target_is_directory=True)
    (lake / "orders" / "inner-link").symlink_to(outside, target_is_directory=True)
    (lake / "file-link.parquet").symlink_to(outside / "keep.parquet")

    removed = _empty_folder(lake)

    assert removed == ["_sinks", "file-link.parquet", "linked", "orders"]
    assert list(lake.iterdir()) == []
    assert [p.name for p in outside.iterdir()] == ["keep.parquet"]
    assert (outside / "keep.parquet").read_bytes() == b"mine"


def test_test_routes_are_off_unless_serve_turns_them_on():
    from core.aws_json import AwsError
    from tidelake.aws_services import AwsServices

    services = AwsServices(kinesis=None, firehose=None, glue=None)  # type: ignore[arg-type]
    for name, route in services.admin_routes(None, enabled=False).items():  # type: ignore[arg-type]
        with pytest.raises(AwsError) as refused:
            route(b"{}")
        assert (refused.value.code, refused.value.status) == ("ResourceNotFoundException", 404)
        assert (
            f"POST /_tidelake/{name} is off" in refused.value.text and "--test-routes" in refused.value.text
        )


def test_a_third_waiting_flush_is_refused_with_503_and_the_first_two_finish(monkeypatch):
    import threading

    from core.aws_json import AwsError
    from tidelake import aws_services
    from tidelake.aws_services import MAX_CONCURRENT_FLUSHES, AwsServices

    release, started = threading.Event(), threading.Semaphore(0)

    def waiting_flush(firehose, name, timeout_s):
        started.release()
        release.wait(10)
        return {"DeliveryStreamName": name}

    monkeypatch.setattr(aws_services, "flush_delivery_stream", waiting_flush)
    flush = AwsServices(kinesis=None, firehose=None, glue=None).admin_routes(None)["flush"]  # type: ignore[arg-type]
    answers: list[dict] = []
    waiting = [
        threading.Thread(
            target=lambda n=n: answers.append(flush(f'{{"DeliveryStreamName": "s{n}"}}'.encode()))
        )
        for n in range(MAX_CONCURRENT_FLUSHES)
    ]
    for thread in waiting:
        thread.start()
    for _ in waiting:
        assert started.acquire(timeout=10)
    with pytest.raises(AwsError) as busy:
        flush(b'{"DeliveryStreamName": "late"}')
    assert (busy.value.code, busy.value.status) == ("ServiceUnavailableException", 503)
    release.set()
    for thread in waiting:
        thread.join(10)
    assert sorted(a["DeliveryStreamName"] for a in answers) == ["s0", "s1"]
    assert flush(b'{"DeliveryStreamName": "after"}') == {
        "DeliveryStreamName": "after"
    }  # a slot is free again
