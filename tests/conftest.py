"""Shared fixtures: the session's real Kafka broker and unique topics per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from core.admin import create_topics
from core.topics import TopicSpec
from tests.kafka_broker import session_kafka

_broker_label = ""


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real Kafka broker; fails the session loudly if none can be had."""
    global _broker_label
    with ExitStack() as stack:
        try:
            address, _broker_label = stack.enter_context(session_kafka(tmp_path_factory.mktemp("broker")))
        except Exception as exc:  # a broker that cannot start fails every broker test, never skips it
            pytest.fail(f"no Kafka broker for the integration tests: {exc}", pytrace=False)
        yield address


def pytest_report_header(config: pytest.Config) -> str:
    return "kafka: chosen on first use (TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, else Docker, else local jars)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _broker_label:
        terminalreporter.write_line(f"kafka used: {_broker_label}")


@pytest.fixture
def make_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic unique to this test: `make_topic(partitions=4)` -> its name."""
    stem = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60].strip("-")

    def make(partitions: int = 1, suffix: str = "") -> str:
        name = f"test.{stem}{'.' + suffix if suffix else ''}.{uuid.uuid4().hex[:8]}"
        create_topics(kafka_bootstrap, [TopicSpec(name, partitions)])
        return name

    return make
