"""Shared fixtures: the session's real Kafka broker and unique topics per test."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from core.admin import admin_client, create_topics, delete_consumer_groups
from core.errors import TidelakeError
from core.settings import BrokerSettings
from core.topics import TopicSpec
from tests.kafka_broker import session_kafka
from tidelake.broker import LocalBroker, free_port

_broker_label = ""
_cleanup_note = ""
#: (address, its topics) when the session began, on a broker given by TIDELAKE_KAFKA__BOOTSTRAP_SERVERS.
_topics_before: tuple[str, set[str]] | None = None


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


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    """On a broker the session did not start (TIDELAKE_KAFKA__BOOTSTRAP_SERVERS), note its topics, so
    that the end of the run deletes those the tests created. With pytest-xdist, the controller does
    it once for all workers (a worker alone would delete the topics of tests still running on
    another)."""
    global _topics_before
    address = os.environ.get("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS")
    if not address or _is_xdist_worker(session.config):
        return
    try:
        with admin_client(address) as admin:
            _topics_before = (address, set(admin.list_topics()))
    except Exception:  # the kafka_bootstrap fixture fails the broker tests loudly
        _topics_before = None


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _topics_before is not None and not _is_xdist_worker(session.config):
        _leave_no_trace(*_topics_before)


def _leave_no_trace(address: str, topics: set[str]) -> None:
    """On a broker the session did not start (someone's dev broker), delete the topics and consumer
    groups that appeared while the tests ran: left there, a demo's pattern-subscribed sinks would
    deliver them. Do not run anything else on that broker at the same time."""
    global _cleanup_note
    with admin_client(address) as admin:
        new_topics = sorted(set(admin.list_topics()) - topics)
        # a group goes only if every offset it committed is on a topic the tests created (the list
        # of groups of a just-started broker can be incomplete, so "new since the start" is not safe)
        listed = sorted(g["group_id"] for g in admin.list_groups())
        committed = admin.list_group_offsets(dict.fromkeys(listed)) if listed else {}
        new_groups = [
            group
            for group, offsets in committed.items()
            if offsets and {tp.topic for tp in offsets} <= set(new_topics)
        ]
        if new_topics:
            admin.delete_topics(new_topics)
    try:
        delete_consumer_groups(address, new_groups)
    except TidelakeError as exc:
        _cleanup_note = f"; could not delete every consumer group: {exc}"
    _cleanup_note = f"removed {len(new_topics)} topics and {len(new_groups)} consumer groups the tests created{_cleanup_note}"


def pytest_report_header(config: pytest.Config) -> str:
    return "kafka: chosen on first use (TIDELAKE_KAFKA__BOOTSTRAP_SERVERS, else Docker, else local jars)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _broker_label:
        terminalreporter.write_line(f"kafka used: {_broker_label}")
    if _cleanup_note:
        terminalreporter.write_line(_cleanup_note)


@pytest.fixture
def make_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic unique to this test: `make_topic(partitions=4)` -> its name."""
    stem = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60].strip("-")

    def make(partitions: int = 1, suffix: str = "") -> str:
        name = f"test.{stem}{'.' + suffix if suffix else ''}.{uuid.uuid4().hex[:8]}"
        create_topics(kafka_bootstrap, [TopicSpec(name, partitions)])
        return name

    return make


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A local broker for one test alone, which it may stop, kill or restart (the session's broker is
    shared, so drills that take Kafka away use this one)."""
    broker = LocalBroker(
        BrokerSettings(
            port=free_port(), controller_port=free_port(), data_dir=tmp_path_factory.mktemp("own-kafka")
        )
    )
    broker.start()
    yield broker
    broker.stop()
