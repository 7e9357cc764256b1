"""Kafka administration shared by every role: reach the cluster, create and describe topics.

Uses kafka-python 3.0's `KafkaAdminClient`. Every failure to reach the broker becomes
`BrokerUnavailable` with the address and what to do next.
"""

from __future__ import annotations

import time
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


@dataclass(frozen=True)
class PartitionLag:
    """How far a consumer group is behind on one partition (Kinesis: iterator age)."""

    topic: str
    partition: int
    committed: int | None  # next offset the group will read; None before its first commit
    end_offset: int
    millis_behind_latest: int  # latest record's timestamp - next unread record's timestamp; 0 when caught up
    #: Whether a read_committed consumer at `committed` still has a record to read (or an open
    #: transaction will give it one). None when nobody looked (`lag` <= 0, or the look timed out).
    records_left: bool | None = None

    @property
    def lag(self) -> int:
        """Offsets between the committed offset and the end, as `kafka-consumer-groups.sh` shows them:
        transaction markers included (each commit or abort takes an offset no consumer receives)."""
        return self.end_offset - (self.committed or 0)

    @property
    def caught_up(self) -> bool:
        """Nothing left to read: no offset left, or only transaction markers and aborted records (a
        read_committed consumer skips them; the stream apps write in transactions, so a group
        reading their topics commits the offset after its last record and stays behind by the marker).
        A committed offset past the end (the topic was deleted and created again) counts as caught up:
        the group will start over at the beginning."""
        return self.lag <= 0 or self.records_left is False


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def caught_up(self) -> bool:
        """Nothing left to read on any partition (see `PartitionLag.caught_up`)."""
        return all(p.caught_up for p in self.partitions)

    @property
    def millis_behind_latest(self) -> int:
        return max((p.millis_behind_latest for p in self.partitions), default=0)


def _first_unread(
    bootstrap_servers: str,
    positions: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    timeout_s: float = 2.0,
) -> dict[TopicPartition, int | None]:
    """For each partition read from the given offset by a read_committed consumer: the timestamp (ms)
    of the first record it gets, or None when it reaches `ends` (the last stable offset, with no
    transaction open) without one: only transaction markers or aborted records were left. A
    partition it could not settle within `timeout_s` is left out."""
    from kafka import KafkaConsumer  # imported here: only `status` pays for a consumer

    if not positions:
        return {}
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None, max_poll_records=1,
        client_id="tidelake-status", fetch_max_bytes=1024 * 1024, max_partition_fetch_bytes=64 * 1024,
        isolation_level="read_committed",
    )  # fmt: skip
    found: dict[TopicPartition, int | None] = {}
    try:
        consumer.assign(list(positions))
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while len(found) < len(positions) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=100, max_records=len(positions)).items():
                if records and tp not in found:
                    found[tp] = records[0].timestamp
                    consumer.pause(tp)
            for tp in positions:
                if tp not in found and consumer.position(tp) >= ends[tp]:
                    found[tp] = None  # read to the end: nothing but markers
                    consumer.pause(tp)
    except KafkaError:
        pass  # what was settled stands; the rest counts as not looked at
    finally:
        consumer.close()
    return found


#: delete_groups answers that mean "try again shortly" (the coordinator of a just-started broker).
_RETRY_GROUP_DELETE = {
    "CoordinatorLoadInProgressError",
    "CoordinatorNotAvailableError",
    "NotCoordinatorError",
}


def delete_consumer_groups(bootstrap_servers: str, groups: Iterable[str], timeout_s: float = 30.0) -> None:
    """Forget these consumer groups and their committed offsets (missing ones are fine). Retries
    while the broker's group coordinator is still loading; raises if a group still has members or
    the broker does not answer in time."""
    pending = set(groups)
    deadline = time.monotonic() + timeout_s
    answers: dict[str, str] = {}
    with admin_client(bootstrap_servers) as client:
        while pending:
            try:
                answers = client.delete_groups(sorted(pending))
            except KafkaError as exc:
                answers = dict.fromkeys(pending, exc.__class__.__name__)
            busy = sorted(
                g for g, answer in answers.items() if answer in ("NonEmptyGroupError", "GroupNotEmptyError")
            )
            if busy:
                msg = f"consumer groups {', '.join(busy)} still have running members; stop them first"
                raise ConfigError(msg)
            pending = {g for g, answer in answers.items() if answer not in ("OK", "GroupIdNotFoundError")}
            if pending and time.monotonic() >= deadline:
                shown = ", ".join(f"{g} ({answers[g]})" for g in sorted(pending))
                msg = (
                    f"could not delete consumer groups at {bootstrap_servers} within {timeout_s:g} s: {shown}"
                )
                raise BrokerUnavailable(msg)
            if pending:
                time.sleep(0.5)


def consumer_group_lag(bootstrap_servers: str, timeout_ms: int = 10_000) -> list[GroupLag]:
    """Every consumer group's committed offsets, lag in records, and milliseconds behind latest."""
    with admin_client(bootstrap_servers, timeout_ms) as client:
        try:
            groups = sorted(g["group_id"] for g in client.list_groups())
            if not groups:
                return []
            committed = client.list_group_offsets({g: None for g in groups})
            partitions = {tp for offsets in committed.values() for tp in offsets}
            ends = (
                client.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
                if partitions
                else {}
            )
            latest_ts = (
                client.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP for tp in partitions})
                if partitions
                else {}
            )
        except KafkaError as exc:
            msg = f"could not read consumer groups at {bootstrap_servers}: {exc}; {START_HINT}"
            raise BrokerUnavailable(msg) from exc
    behind = {
        (g, tp): meta.offset
        for g, offsets in committed.items()
        for tp, meta in offsets.items()
        if meta.offset is not None and 0 <= meta.offset < ends[tp].offset
    }
    looked = _look_past_committed(bootstrap_servers, behind, {tp: o.offset for tp, o in ends.items()})
    result = []
    for group in groups:
        rows = []
        for tp, meta in sorted(committed.get(group, {}).items()):
            left, next_ts = looked.get((group, tp), (None, None))
            millis = max(0, latest_ts[tp].timestamp - next_ts) if next_ts is not None else 0
            offset = meta.offset if meta.offset is not None and meta.offset >= 0 else None
            rows.append(PartitionLag(tp.topic, tp.partition, offset, ends[tp].offset, millis, left))
        result.append(GroupLag(group, tuple(rows)))
    return result


def _look_past_committed(
    bootstrap_servers: str, behind: dict[tuple[str, TopicPartition], int], ends: dict[TopicPartition, int]
) -> dict[tuple[str, TopicPartition], tuple[bool, int | None]]:
    """For each (group, partition) behind its end: whether a record is left for it, and the timestamp
    of the next one it will read. Only transaction markers (or aborted records) left: (False, None).
    A transaction still open on the partition (its last stable offset below the end) counts as a
    record left: its rows are coming. A partition that could not be read is left out."""
    if not behind:
        return {}
    try:
        with admin_client(bootstrap_servers) as client:
            stable = {
                tp: info.offset
                for tp, info in client.list_partition_offsets(
                    {tp: OffsetSpec.LATEST for _, tp in behind}, isolation_level="read_committed"
                ).items()
            }
    except (KafkaError, BrokerUnavailable):
        return {}
    # groups on one partition may sit at different offsets: one consumer pass per distinct offset
    rounds: list[dict[TopicPartition, int]] = []
    for (_, tp), offset in sorted(behind.items(), key=lambda item: item[1]):
        fits = next((r for r in rounds if r.get(tp, offset) == offset), None)
        if fits is None:
            rounds.append(fits := {})
        fits[tp] = offset
    seen: dict[tuple[TopicPartition, int], int | None] = {}
    for positions in rounds:
        first = _first_unread(bootstrap_servers, positions, {tp: stable[tp] for tp in positions})
        seen.update({(tp, positions[tp]): ts for tp, ts in first.items()})
    out: dict[tuple[str, TopicPartition], tuple[bool, int | None]] = {}
    for (group, tp), offset in behind.items():
        if stable[tp] < ends[tp]:
            out[group, tp] = (True, seen.get((tp, offset)))
        elif (tp, offset) in seen:
            ts = seen[tp, offset]
            out[group, tp] = (ts is not None, ts)
    return out


def group_assignments(
    bootstrap_servers: str, groups: Iterable[str], timeout_ms: int = 5_000
) -> dict[str, int]:
    """Partitions assigned to each consumer group's members now (0: no member holds one, or the group
    has no member). Groups the broker cannot describe are left out."""
    wanted = sorted(set(groups))
    if not wanted:
        return {}
    with admin_client(bootstrap_servers, timeout_ms) as client:
        try:
            described = client.describe_groups(wanted)
        except KafkaError:
            return {}
    out = {}
    for group, info in described.items():
        if info.get("error"):
            continue
        count = 0
        for member in info.get("members", []):
            assignment = member.get("member_assignment")
            if hasattr(assignment, "partitions"):
                count += len(assignment.partitions())
            elif isinstance(assignment, dict):
                count += sum(len(t.get("partitions", [])) for t in assignment.get("assigned_partitions", []))
        out[group] = count
    return out
