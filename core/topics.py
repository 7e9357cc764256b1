"""The topic catalogue: every Kafka topic tidelake uses, declared once.

Topics stand in for Kinesis data streams and partitions for shards. Names follow
`domain.entity[.derivation]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Raw clickstream events from replay, generate, the agent and the put API (key = visitor_id).
CLICKSTREAM_EVENTS = "clickstream.events"
#: Suffix of a topic's dead-letter topic: lines that could not be parsed, with error headers.
DLQ_SUFFIX = ".dlq"
#: Kafka's own topics (`__consumer_offsets`, `__transaction_state`) start with this: no AWS API
#: may read, write or delete them as streams.
INTERNAL_TOPIC_PREFIX = "__"
#: Side output of every stream app: events that arrived after their window closed.
LATE_EVENTS = "analytics.late-events"
#: Prefix of the topics the stream apps write (one per app).
ANALYTICS_PREFIX = "analytics."

#: Kinesis keeps records 24 h by default; Kafka's default is 7 days.
KINESIS_RETENTION_MS = 24 * 60 * 60 * 1000


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of `topic`: `clickstream.events` -> `clickstream.events.dlq`."""
    return topic + DLQ_SUFFIX


def stream_app_group(app_name: str) -> str:
    """The consumer group a stream app (aiokafka runtime) reads its source in and commits to."""
    return f"tidelake-stream-{app_name}"


def analytics_topic(app_name: str) -> str:
    """The output topic of a stream app: `page-views-1m` -> `analytics.page-views-1m`."""
    return ANALYTICS_PREFIX + app_name


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partition count (shards) and topic configs."""

    name: str
    partitions: int = 4
    configs: dict[str, str] = field(default_factory=dict)


def default_topics(partitions: int = 4) -> list[TopicSpec]:
    """The topics every pipeline needs before any stream app starts."""
    retention = {"retention.ms": str(KINESIS_RETENTION_MS)}
    return [
        TopicSpec(CLICKSTREAM_EVENTS, partitions, retention),
        TopicSpec(dlq_topic(CLICKSTREAM_EVENTS), 1, retention),
        TopicSpec(LATE_EVENTS, partitions, retention),
    ]
