"""Which real Kafka the test session talks to: `tidelake.testing.brokers` decides (the address in
TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, else `apache/kafka` in Docker, else the local jars), the same
choice the pytest plugin users install makes. Nothing here is ever replaced by a mock."""

from __future__ import annotations

from tidelake.testing.brokers import (
    DOCKER_IMAGE,
    docker_engine_answers,
    docker_kafka,
    local_kafka,
    session_kafka,
)

__all__ = ["DOCKER_IMAGE", "docker_engine_answers", "docker_kafka", "local_kafka", "session_kafka"]
