"""Kafka administration shared by every role: reach the cluster, create and describe topics.

Uses kafka-python 3.0's `KafkaAdminClient`. Every failure to reach the broker becomes
`BrokerUnavailable` with the address and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic, OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.errors import BrokerUnavailable, ConfigError
from core.topics import TopicSpec

START_HINT = "start one with `tidelake broker start` or set TIDELAKE_KAFKA__BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the broker describes it, with the end offset of each partition."""

    name: str
    partitions: int
    end_offsets: tuple[int, ...]

    @property
    def records(self) -> int:
        """Records appended so far (the sum of end offsets; retention is ignored)."""
        return sum(self.end_offsets)


@contextmanager
def admin_client(bootstrap_servers: str, timeout_ms: int = 10_000) -> Iterator[KafkaAdminClient]:
    """An admin client connected to the cluster, closed on exit."""
    try:
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="tidelake-admin",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        msg = f"no Kafka broker answers at {bootstrap_servers} ({exc.__class__.__name__}); {START_HINT}"
        raise BrokerUnavailable(msg) from exc
    try:
        yield client
    finally:
        client.close()


def describe_cluster(bootstrap_servers: str, timeout_ms: int = 10_000) -> dict:
    """The cluster id, controller and brokers, as DescribeCluster returns them."""
    with admin_client(bootstrap_servers, timeout_ms) as client:
        try:
            return dict(client.describe_cluster())
        except KafkaError as exc:
            msg = f"the broker at {bootstrap_servers} did not describe its cluster: {exc}; {START_HINT}"
            raise BrokerUnavailable(msg) from exc


def create_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], timeout_ms: int = 30_000) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Waits until every new partition has a leader, so producers can write at once.
    An existing topic with fewer partitions than asked is reported, never changed.
    """
    specs = list(specs)
    for spec in specs:
        if spec.partitions < 1:
            msg = f"topic {spec.name!r}: --partitions must be at least 1, got {spec.partitions}"
            raise ConfigError(msg)
    with admin_client(bootstrap_servers, timeout_ms) as client:
        existing = set(client.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        if not wanted:
            return []
        new_topics = [NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.configs)) for s in wanted]
        try:
            result = client.create_topics(
                new_topics, timeout_ms=timeout_ms, raise_errors=False, wait_for_metadata=True
            )
        except KafkaError as exc:
            msg = f"could not create topics {[s.name for s in wanted]} at {bootstrap_servers}: {exc}"
            raise BrokerUnavailable(msg) from exc
        created = []
        for topic in result["topics"]:
            code = topic["error_code"]
            if code == 0:
                created.append(topic["name"])
            elif code != TopicAlreadyExistsError.errno:  # lost a race with another creator: fine
                msg = f"could not create topic {topic['name']!r}: {topic['error_message']} (error {code})"
                raise ConfigError(msg)
        return created


def describe_topics(
    bootstrap_servers: str, names: Iterable[str] | None = None, timeout_ms: int = 10_000
) -> list[TopicInfo]:
    """Topics (all but Kafka's internal ones when `names` is None) with partition end offsets."""
    with admin_client(bootstrap_servers, timeout_ms) as client:
        wanted = sorted(names) if names is not None else sorted(client.list_topics())
        if not wanted:
            return []
        try:
            described = client.describe_topics(wanted)
            partitions = {
                t["name"]: sorted(p["partition_index"] for p in t["partitions"])
                for t in described
                if t["error_code"] == 0 and not t.get("is_internal")
            }
            specs = {TopicPartition(n, p): OffsetSpec.LATEST for n, ps in partitions.items() for p in ps}
            offsets = client.list_partition_offsets(specs) if specs else {}
        except KafkaError as exc:
            msg = f"could not describe topics at {bootstrap_servers}: {exc}; {START_HINT}"
            raise BrokerUnavailable(msg) from exc
        return [
            TopicInfo(name, len(ps), tuple(offsets[TopicPartition(name, p)].offset for p in ps))
            for name, ps in sorted(partitions.items())
        ]
