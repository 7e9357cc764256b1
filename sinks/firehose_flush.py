"""A forced flush of a Firehose stream that returns when what was put before it is durable in the lake.

    answer = flush_delivery_stream(service, "orders", timeout_s=30)
    # {"DeliveryStreamName": "orders", "Dataset": "orders", "Topic": "firehose.orders",
    #  "Offsets": {"0": 12, "1": 9, ...}, "Records": 21, "Requests": 3}
    # Offsets: the log-end offsets waited for; Records: how many of them were not committed before

Firehose has no such action: a delivery stream flushes when a buffering hint is reached (size or
`IntervalInSeconds`). Tests cannot wait for an interval without sleeping, so tidelake's test stack
(`POST /_tidelake/flush` on `tidelake serve`) asks the stream's sink to flush now, as the interval
would, and waits until the sink's consumer group has committed every partition up to the topic's
log-end offsets taken when the flush began. A sink commits only after its files are written,
fsynced and renamed (`sinks.stream`'s flush order), so a committed offset means durable files.

Records put after the flush began are not waited for. A sink that does not get there within
`timeout_s` raises `AwsError` (ServiceUnavailableException, 503) naming each partition's committed
and wanted offsets: what the caller would need to see what is stuck.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError

from core.admin import admin_client
from core.aws_json import AwsError
from core.errors import BrokerUnavailable
from sinks.firehose_api import FirehoseService
from sinks.firehose_streams import SupervisedSink

#: How often the committed offsets are checked (and the flush asked for again: records polled after
#: the previous request are buffered again).
CHECK_EVERY_S = 0.05


def flush_delivery_stream(service: FirehoseService, name: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Flush stream `name` and wait until what was put before the call is committed (see the module
    docstring). ResourceNotFoundException when there is no such stream; ServiceUnavailableException
    when Kafka cannot be reached or the sink has not caught up within `timeout_s` seconds."""
    topic, group, dataset, runner = service.flush_target(name)
    deadline = time.monotonic() + timeout_s
    requests = 0
    pause = threading.Event()
    try:
        with admin_client(service.bootstrap) as admin:
            wanted = _end_offsets(admin, topic)
            before = committed = _committed(admin, group, topic)
            while not all(committed.get(p, 0) >= end for p, end in wanted.items()):
                if time.monotonic() >= deadline:
                    raise _late(name, topic, timeout_s, wanted, committed, runner, requests)
                runner = service.flush_target(name)[3]  # a restarted sink is a new runner's stream
                if runner is not None and runner.request_flush():
                    requests += 1
                pause.wait(CHECK_EVERY_S)
                committed = _committed(admin, group, topic)
    except (KafkaError, BrokerUnavailable) as exc:
        msg = f"Kafka at {service.bootstrap} cannot be reached: {exc}"
        raise AwsError("ServiceUnavailableException", msg, 503) from exc
    return {
        "DeliveryStreamName": name,
        "Dataset": dataset,
        "Topic": topic,
        "Offsets": {str(p): end for p, end in sorted(wanted.items())},
        "Records": sum(max(0, end - before.get(p, 0)) for p, end in wanted.items()),
        "Requests": requests,
    }


def _late(
    name: str,
    topic: str,
    timeout_s: float,
    wanted: dict[int, int],
    committed: dict[int, int],
    runner: SupervisedSink | None,
    requests: int,
) -> AwsError:
    behind = {
        f"{topic}[{p}]": f"committed {committed.get(p, 0)} of {end}"
        for p, end in sorted(wanted.items())
        if committed.get(p, 0) < end
    }
    status = runner.status if runner is not None else "no sink running"
    failure = f"; last failure: {runner.failure}" if runner is not None and runner.failure else ""
    msg = (
        f"Firehose stream {name} did not deliver within {timeout_s:g} s "
        f"(sink {status}{failure}; flush asked {requests} times): {behind}"
    )
    return AwsError("ServiceUnavailableException", msg, 503)


def _end_offsets(admin: KafkaAdminClient, topic: str) -> dict[int, int]:
    described = admin.describe_topics([topic])
    partitions = [
        TopicPartition(topic, p["partition_index"])
        for t in described
        if t["name"] == topic and t["error_code"] == 0
        for p in t["partitions"]
    ]
    if not partitions:
        return {}
    ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
    return {tp.partition: int(info.offset) for tp, info in ends.items()}


def _committed(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    offsets = admin.list_group_offsets({group: None}).get(group) or {}
    return {tp.partition: int(meta.offset) for tp, meta in offsets.items() if tp.topic == topic}
