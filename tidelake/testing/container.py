"""tidelake in a container, for testcontainers users: `tidelake serve` built from the project's
Dockerfile, its AWS endpoint (Kinesis, Firehose, S3, Glue, Athena) on one exposed port.

    from testcontainers.core.network import Network
    from testcontainers.kafka import KafkaContainer
    from tidelake.testing import TidelakeContainer

    with Network() as network, \\
         KafkaContainer().with_network(network).with_network_aliases("kafka") as kafka, \\
         TidelakeContainer.from_dockerfile("/path/to/tidelake") as image, \\
         TidelakeContainer(str(image), kafka_bootstrap_servers="kafka:9092").with_network(network) as tidelake:
        kinesis = boto3.client("kinesis", endpoint_url=tidelake.get_endpoint_url(),
                               aws_access_key_id=tidelake.token, aws_secret_access_key="x",
                               region_name="us-east-1")

The project's image holds Python and tidelake, not a JVM, so Kafka runs beside it (a Kafka
container on the same network, as above, or any broker the container can reach). serve listens on
0.0.0.0 inside the container, which needs a token (its rule off loopback): the clients send it as
their access key id. The lake and state live in the container (`/lake`, `/state`).

Untried on the machine it was written on (no Docker engine): the configuration is unit-tested
(tests/unit/test_testing_container.py), a run is not. Mirrors testcontainers-python's own modules
(`testcontainers.kafka`, `testcontainers.localstack`): a DockerContainer subclass that sets its
command, environment, exposed port and wait strategy in `__init__` and adds `get_endpoint_url`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.image import DockerImage
from testcontainers.core.wait_strategies import HttpWaitStrategy

#: The port serve listens on inside the container (the compose file's too).
PORT = 8080
#: The tag `from_dockerfile` gives the image it builds.
IMAGE_TAG = "tidelake:testing"
#: The token serve requires off loopback; the clients send it as their access key id.
DEFAULT_TOKEN = "tidelake-test"
#: What the wait strategy asks for: serve's OpenAPI document, answered once the app is up.
READY_PATH = "/openapi.json"
START_TIMEOUT_S = 120


class TidelakeContainer(DockerContainer):
    """`tidelake serve` in a container (see the module docstring). `kafka_bootstrap_servers` is the
    broker's address as the container sees it; `allowed_hosts` are the Host names serve answers
    besides its own (the address the clients use: localhost, or the Docker host's name)."""

    def __init__(
        self,
        image: str = IMAGE_TAG,
        *,
        kafka_bootstrap_servers: str = "kafka:9092",
        token: str = DEFAULT_TOKEN,
        allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        **kwargs: Any,
    ) -> None:
        super().__init__(image, **kwargs)
        self.token = token
        self.port = PORT
        command = ["serve", "--host", "0.0.0.0", "--port", str(PORT), "--token", token, "--test-routes"]
        for host in allowed_hosts:
            command += ["--allowed-host", host]
        self.with_command(command)
        self.with_envs(
            TIDELAKE_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
            TIDELAKE_LAKE__ROOT="/lake",
            TIDELAKE_RUNTIME__STATE_DIR="/state",
        )
        self.with_exposed_ports(PORT)
        self.waiting_for(
            HttpWaitStrategy(PORT, READY_PATH).for_status_code(200).with_startup_timeout(START_TIMEOUT_S)
        )

    def get_endpoint_url(self) -> str:
        """The AWS endpoint as the host sees it: `http://<docker host>:<mapped port>`."""
        return f"http://{self.get_container_host_ip()}:{self.get_exposed_port(PORT)}"

    @staticmethod
    def from_dockerfile(context: str | Path, tag: str = IMAGE_TAG, **kwargs: Any) -> DockerImage:
        """The image built from the Dockerfile in `context` (a tidelake checkout); a context manager
        that removes the image at its end (testcontainers' DockerImage)."""
        return DockerImage(path=str(context), tag=tag, **kwargs)
