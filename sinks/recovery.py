"""Crash recovery: the flushes a crashed run had begun, rolled forward from their manifests.

When partitions are assigned, an unfinished flush found in a partition's write-ahead manifest
(`sinks.manifest`) is noted before new records go on. Its records are read again and set aside
here; the delivery stream rolls the flush forward (`DeliveryStream._finish_recovery`: the same
records give the same files under the same names) once the whole range is read, or as soon as a
record past it arrives. A manifest whose range is already committed is stale (the run died between
the commit and the manifest's deletion) and is deleted, whether that shows from the first record
handed over or from the group's committed offset.
"""

from __future__ import annotations

from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from sinks.manifest import Manifest, ManifestStore
from sinks.records import RecordColumns

Partition = tuple[str, int]


class Recovery:
    """The unfinished flushes of the assigned partitions and the records read again to finish them."""

    def __init__(self, manifests: ManifestStore) -> None:
        self.manifests = manifests
        self.pending: dict[Partition, Manifest] = {}
        self.records: dict[Partition, RecordColumns] = {}
        self._checked: set[Partition] = set()

    @property
    def buffered(self) -> int:
        """Records read again and not yet rolled forward."""
        return sum(len(r) for r in self.records.values())

    def note_assigned(self, assigned: set[TopicPartition]) -> None:
        """Note unfinished flushes (no Kafka calls here: this runs on kafka-python's IO thread).
        Whether one is stale shows from the first record handed over (`accept`) or from the
        committed offset (`settled`)."""
        for tp in assigned:
            pending = self.manifests.read(tp.topic, tp.partition)
            if pending is not None:
                self.pending[(tp.topic, tp.partition)] = pending
                self._checked.discard((tp.topic, tp.partition))

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions handed on: their next owner finds the manifests and rolls the flushes forward."""
        for tp in revoked:
            key = (tp.topic, tp.partition)
            self.pending.pop(key, None)
            self.records.pop(key, None)

    def accept(self, key: Partition, records: list[ConsumerRecord]) -> tuple[list[ConsumerRecord], bool]:
        """Set aside the records (in offset order) that an unfinished flush of `key` covers; returns
        the rest, and whether that flush can be rolled forward now (its range is read)."""
        pending = self.pending.get(key)
        if pending is not None and not self.records.get(key) and records[0].offset > pending.end:
            self.drop_stale(key)
            pending = None
        if pending is None:
            return records, False
        redo = [r for r in records if r.offset <= pending.end]
        records = records[len(redo) :]
        collected = self.records.setdefault(key, RecordColumns(*key))
        collected.extend(redo)
        return records, bool(records or (redo and redo[-1].offset >= pending.end))

    def settled(self, consumer: KafkaConsumer) -> Iterator[Partition]:
        """Settle unfinished flushes that no record will settle: a range already committed on an
        idle partition (stale: dropped here), or a range whose last offsets hold no records
        (transaction markers: yielded, to be rolled forward before the next is looked at).
        Decided from the committed offset and the log end, never from the fetch position, which
        can run ahead of the records handed to us."""
        for key, pending in list(self.pending.items()):
            tp = TopicPartition(*key)
            if key not in self._checked:
                self._checked.add(key)
                try:
                    committed = consumer.committed(tp)
                except KafkaError:
                    committed = None
                if committed is not None and committed > pending.end:
                    self.drop_stale(key)
                    continue
            collected = self.records.get(key)
            high = consumer.highwater(tp)
            if collected and high is not None and collected.last_offset + 1 >= high:
                yield key  # everything the log holds up to its end was read

    def take(self, key: Partition) -> tuple[Manifest, RecordColumns]:
        """The unfinished flush of `key` and its records read again, to be rolled forward."""
        pending = self.pending.pop(key)
        return pending, self.records.pop(key, RecordColumns(*key))

    def drop_stale(self, key: Partition) -> None:
        """The manifest's range was committed before the crash (it died between steps 4 and 5)."""
        self.pending.pop(key, None)
        self.records.pop(key, None)
        self.manifests.delete(*key)
