"""Planning a flush: the files one flush writes for one Kafka partition's records.

Records go through the transform hook (if any), the format conversion, and the prefix template;
rows are grouped by prefix into one file each, and records that fail on the way are grouped by
error type into error files. Nothing is written here: `DeliveryStream` writes the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from core.dead_letters import DeadLetter
from core.lake import ERRORS_DIR, data_file_name
from sinks import transform
from sinks.config import DeliveryStreamConfig
from sinks.conversion import Conversion, combine, convert
from sinks.error_records import (
    ACTIVE_PARTITION_EXCEEDED,
    FORMAT_CONVERSION_FAILED,
    PROCESSING_FAILED,
    ErrorRecord,
    error_table,
)
from sinks.records import PackedBytes, RecordColumns
from sinks.schemas import DatasetSchema

_UTC_US = pa.timestamp("us", "UTC")


@dataclass
class PlannedFile:
    relative_path: str  # from the lake root
    table: pa.Table
    rows: int
    error_type: str | None = None


@dataclass
class PartitionPlan:
    """Everything one flush does for `topic[partition]`, offsets `start..end`."""

    topic: str
    partition: int
    start: int
    end: int
    files: list[PlannedFile] = field(default_factory=list)
    rows_written: int = 0
    bytes: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Planner:
    """Turns buffered records into planned files, with the stream's config, schemas and templates."""

    def __init__(self, config: DeliveryStreamConfig, handler: transform.Handler | None = None) -> None:
        self.config = config
        self.handler = handler
        self.prefix, self.error_prefix = config.templates()
        self.schemas: dict[str, DatasetSchema] = {}

    def schema_for(self, dataset: str) -> DatasetSchema:
        if dataset not in self.schemas:
            self.schemas[dataset] = self.config.new_schema()
        return self.schemas[dataset]

    @property
    def converts_ahead(self) -> bool:
        """Whether batches may be converted as they arrive (`convert_batch`): not when a transform
        hook rewrites them first, nor for dead letters, which are not converted."""
        return self.handler is None and self.config.mode != "errors"

    def convert_batch(self, topic: str, values: PackedBytes) -> Conversion:
        """One batch's format conversion, done ahead of its flush (in the order batches arrive)."""
        return convert(values, self.schema_for(self.config.dataset_of(topic)), joined=values.joined())

    def plan(
        self, records: RecordColumns, open_prefixes: set[str], converted: Sequence[Conversion] = ()
    ) -> PartitionPlan:
        """The files for one partition's records (in offset order). `open_prefixes` is shared by
        all partitions of one flush, for the bound on open partitions. `converted` holds the
        `convert_batch` results of all of `records`' batches, in order, when they were converted
        ahead."""
        topic, partition = records.topic, records.partition
        dataset = self.config.dataset_of(topic)
        plan = PartitionPlan(topic, partition, records.first_offset, records.last_offset)
        failed: list[ErrorRecord] = []
        if self.config.mode == "errors":
            failed = [_dead_letter(records, i) for i in range(len(records))]
        else:
            self._plan_rows(records, dataset, plan, failed, open_prefixes, converted)
        self._plan_errors(failed, dataset, plan)
        return plan

    # -- rows ------------------------------------------------------------------------------------

    def _plan_rows(
        self,
        records: RecordColumns,
        dataset: str,
        plan: PartitionPlan,
        failed: list[ErrorRecord],
        open_prefixes: set[str],
        converted: Sequence[Conversion],
    ) -> None:
        # `kept` and then `rows` are positions in `records`: the records still on their way, in order
        kept: Sequence[int] = range(len(records))
        values: Sequence[bytes | None] = records.values
        keys: list[dict[str, str] | None] | None = None
        if self.handler is not None:
            outcomes = transform.apply(self.handler, records, self.config.name)
            kept, values, keys = [], [], []
            for i, outcome in enumerate(outcomes):
                if outcome.result == transform.OK:
                    kept.append(i)
                    values.append(outcome.data)
                    keys.append(outcome.partition_keys)
                elif outcome.result == transform.DROPPED:
                    plan.dropped += 1
                else:
                    failed.append(_failure(records, i, PROCESSING_FAILED, outcome.message))
        if not kept:
            return
        schema = self.schema_for(dataset)
        if converted and self.converts_ahead:
            conversion = combine(converted, schema)
        else:
            # the buffer's blob is the input Arrow reads, unless the hook rewrote the values
            joined = records.values.joined() if values is records.values else None
            conversion = convert(values, schema, joined=joined)
        for index, message in conversion.errors:
            failed.append(_failure(records, kept[index], FORMAT_CONVERSION_FAILED, message))
        if not conversion.rows:
            return
        rows: Sequence[int] = kept if not conversion.errors else [kept[i] for i in conversion.rows]
        if keys is not None and conversion.errors:
            keys = [keys[i] for i in conversion.rows]
        table = conversion.table
        times = self._times(table, records, rows)
        if times is not None and times.null_count:
            message = f"missing timestamp: field {self.config.time_field!r} is absent or null"
            bad = pc.is_null(times)
            failed.extend(
                _failure(records, rows[i], FORMAT_CONVERSION_FAILED, message)
                for i in pc.indices_nonzero(bad).to_pylist()
            )
            good = pc.invert(bad)
            table, times = table.filter(good), times.filter(good)
            flags = good.to_pylist()
            rows = [r for r, ok in zip(rows, flags, strict=True) if ok]
            if keys is not None:
                keys = [k for k, ok in zip(keys, flags, strict=True) if ok]
        if not rows:
            return
        prefixes = self.prefix.evaluate(
            len(rows),
            times=times,
            table=table,
            lambda_keys=keys,
            seed=f"{plan.topic}:{plan.partition}:{plan.start}",
        )
        for prefix, mask in _groups(prefixes):
            if prefix not in open_prefixes and len(open_prefixes) >= self.config.buffer.max_open_partitions:
                message = f"more than {self.config.buffer.max_open_partitions} open partitions in one flush; prefix {prefix!r} was not opened"
                chosen = (
                    rows if mask is None else [r for r, ok in zip(rows, mask.to_pylist(), strict=True) if ok]
                )
                failed.extend(_failure(records, r, ACTIVE_PARTITION_EXCEEDED, message) for r in chosen)
                continue
            open_prefixes.add(prefix)
            sub = table if mask is None else table.filter(mask)
            # rows are in offset order, so the group's first row holds its first offset
            first_offset = records.offsets[rows[0 if mask is None else pc.index(mask, True).as_py()]]
            path = f"{dataset}/{prefix}{data_file_name(plan.topic, plan.partition, first_offset)}"
            plan.files.append(PlannedFile(path, sub, sub.num_rows))
            plan.rows_written += sub.num_rows

    def _times(self, table: pa.Table, records: RecordColumns, rows: Sequence[int]) -> pa.Array | None:
        if not self.prefix.uses_timestamp:
            return None
        if self.config.time_source == "arrival":
            stamps = records.timestamps
            return _arrival_times(stamps if len(rows) == len(stamps) else [stamps[i] for i in rows])
        name = self.config.time_field or ""
        if name not in table.column_names:
            return pa.nulls(table.num_rows, _UTC_US)
        column = table.column(name).combine_chunks()
        if column.type != _UTC_US:
            try:
                column = pc.cast(column, _UTC_US)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return pa.nulls(table.num_rows, _UTC_US)
        return column

    # -- errors ----------------------------------------------------------------------------------

    def _plan_errors(self, failed: list[ErrorRecord], dataset: str, plan: PartitionPlan) -> None:
        if not failed:
            return
        by_type: dict[str, list[ErrorRecord]] = {}
        for record in failed:
            by_type.setdefault(record.error_type, []).append(record)
        for error_type, records in by_type.items():
            plan.errors[error_type] = plan.errors.get(error_type, 0) + len(records)
            times = _arrival_times([r.timestamp_ms for r in records])
            prefixes = self.error_prefix.evaluate(
                len(records),
                times=times,
                error_type=error_type,
                seed=f"{plan.topic}:{plan.partition}:{plan.start}",
            )
            for prefix, mask in _groups(prefixes):
                chosen = (
                    records
                    if mask is None
                    else [r for r, ok in zip(records, mask.to_pylist(), strict=True) if ok]
                )
                path = f"{ERRORS_DIR}/{dataset}/{prefix}{data_file_name(plan.topic, plan.partition, chosen[0].offset)}"
                plan.files.append(
                    PlannedFile(path, error_table(chosen, self.config.name), len(chosen), error_type)
                )


def _groups(prefixes: pa.Array) -> list[tuple[str, pa.Array | None]]:
    """(prefix, row mask) per distinct prefix in order of first appearance; mask None = all rows."""
    encoded = pc.dictionary_encode(prefixes)
    values = encoded.dictionary.to_pylist()
    if len(values) == 1:
        return [(values[0], None)]
    return [(value, pc.equal(encoded.indices, code)) for code, value in enumerate(values)]


def _arrival_times(millis: Sequence[int]) -> pa.Array:
    """Kafka record timestamps (ms; -1 or 0 when the producer set none) as UTC microseconds."""
    return pc.cast(pa.array([max(m, 0) for m in millis], pa.timestamp("ms", "UTC")), _UTC_US)


def _failure(
    records: RecordColumns, row: int, error_type: str, message: str, dead_letter: DeadLetter | None = None
) -> ErrorRecord:
    return ErrorRecord(
        error_type=error_type,
        error_message=message,
        topic=records.topic,
        partition=records.partition,
        offset=records.offsets[row],
        timestamp_ms=records.timestamps[row],
        key=records.keys[row],
        value=records.values[row],
        headers=records.headers_at(row),
        dead_letter=dead_letter,
    )


def _dead_letter(records: RecordColumns, row: int) -> ErrorRecord:
    """A record of a dead-letter topic, filed under the error type its headers give (the contract of
    core/dead_letters.py), with their message and the record's source."""
    letter = DeadLetter.from_headers(records.headers_at(row))
    # kept as written: the error prefix's `!{firehose:error-output-type}` escapes it into one path segment
    error_type = letter.error_type or PROCESSING_FAILED
    message = letter.message or "dead-lettered without an error.message header"
    return _failure(records, row, error_type, message, letter)
