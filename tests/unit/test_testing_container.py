"""TidelakeContainer's configuration, checked without a Docker engine (none on the build machine:
a container run is untried there). An explicit API version keeps docker-py from asking an engine."""

from __future__ import annotations

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy

from tidelake.testing import TidelakeContainer
from tidelake.testing.container import IMAGE_TAG, PORT

NO_ENGINE = {"docker_client_kw": {"version": "1.44"}}


def test_container_serves_the_aws_endpoint_on_its_exposed_port_with_a_token():
    container = TidelakeContainer(**NO_ENGINE)

    assert isinstance(container, DockerContainer)
    assert container.image.endswith(IMAGE_TAG)
    assert container.ports == {"8080": None} and PORT == 8080
    assert container._command == [
        "serve", "--host", "0.0.0.0", "--port", "8080", "--token", "tidelake-test", "--test-routes",
        "--allowed-host", "localhost", "--allowed-host", "127.0.0.1",
    ]  # fmt: skip
    assert container.token == "tidelake-test"


def test_container_reaches_kafka_and_keeps_lake_and_state_inside():
    container = TidelakeContainer("my/tidelake:1", kafka_bootstrap_servers="broker:29092", **NO_ENGINE)

    assert container.image.endswith("my/tidelake:1")
    assert container.env == {
        "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS": "broker:29092",
        "TIDELAKE_LAKE__ROOT": "/lake",
        "TIDELAKE_RUNTIME__STATE_DIR": "/state",
    }


def test_container_is_ready_when_serve_answers_its_openapi_document():
    strategy = TidelakeContainer(token="t0k", allowed_hosts=("docker.internal",), **NO_ENGINE)._wait_strategy

    assert isinstance(strategy, HttpWaitStrategy)
    assert (strategy._port, strategy._path, strategy._method) == (8080, "/openapi.json", "GET")
    assert strategy._status_codes == {200}
    assert strategy._startup_timeout == 120
