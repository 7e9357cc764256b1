"""The Faust host's own logic that needs no broker."""

from types import SimpleNamespace
from typing import Any

from stream_apps.faust_windows import bootstrap_of, unread


def test_faust_host_passes_each_unread_offset_once() -> None:
    offsets = [3, 4, 5, 5, 6, 4, 7]  # a re-fetch after a seek can repeat records, even in one batch
    messages = [SimpleNamespace(offset=o) for o in offsets]
    assert [m.offset for m in unread(messages, 4)] == [4, 5, 6, 7]
    assert [m.offset for m in unread(messages, 0)] == [3, 4, 5, 6, 7]


def test_faust_host_reads_the_bootstrap_servers_from_the_apps_broker_setting() -> None:
    import faust

    app = faust.App("bootstrap-test", broker="kafka://10.0.0.1:9093;kafka://10.0.0.2", web_enabled=False)
    assert bootstrap_of(app) == "10.0.0.1:9093,10.0.0.2:9092"


def _event(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset))


def _batches(offsets: list[int], queued_after: set[int], max_batch: int) -> list[list[int]]:
    """`micro_batches` over events at `offsets`, the queue holding more after each offset in
    `queued_after` (the consumer has delivered past it) and empty after the others."""
    import asyncio

    from stream_apps.faust_windows import micro_batches

    seen: list[int] = []

    async def events() -> Any:
        for offset in offsets:
            seen.append(offset)
            yield _event(0, offset)

    async def collect() -> list[list[int]]:
        found = micro_batches(events(), lambda: seen[-1] not in queued_after, max_batch)
        return [[m.offset for m in batch] async for batch in found]

    return asyncio.run(collect())


def test_faust_host_micro_batch_ends_when_nothing_more_is_queued() -> None:
    assert _batches([0, 1, 2, 3, 4], queued_after={0, 1, 3}, max_batch=100) == [[0, 1, 2], [3, 4]]


def test_faust_host_micro_batch_ends_at_max_batch_while_more_is_queued() -> None:
    assert _batches([0, 1, 2, 3, 4], queued_after={0, 1, 2, 3}, max_batch=2) == [[0, 1], [2, 3], [4]]


def test_faust_host_micro_batch_left_open_when_the_stream_ends_is_not_applied() -> None:
    assert _batches([0, 1, 2], queued_after={0, 1, 2}, max_batch=100) == []


def test_faust_host_source_events_carry_the_records_bytes_whatever_the_apps_serializer() -> None:
    import asyncio

    import faust
    from faust.types import TP, Message

    from stream_apps.faust_windows import raw_schema

    app = faust.App("raw-schema-test", broker="kafka://localhost:9092", web_enabled=False,
                    value_serializer="json", key_serializer="json")  # fmt: skip
    topic = app.topic("clickstream.events", acks=False, schema=raw_schema()())
    not_json = b"{not json"
    message = Message("clickstream.events", 2, 41, 0.0, 0, [], b"visitor-7", not_json, None,
                      tp=TP("clickstream.events", 2))  # fmt: skip
    event = asyncio.run(topic.decode(message, propagate=True))
    assert (event.key, event.value, event.message) == (b"visitor-7", not_json, message)
