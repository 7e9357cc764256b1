"""The transform hook, with the contract of a Firehose data-transformation Lambda.

A hook is any Python callable `handler(event, context)` written like a Lambda handler:

    event  = {"invocationId": ..., "deliveryStreamArn": ..., "region": "local",
              "records": [{"recordId": "...", "approximateArrivalTimestamp": ms, "data": base64}]}
    return {"records": [{"recordId": "...", "result": "Ok" | "Dropped" | "ProcessingFailed",
                         "data": base64, "metadata": {"partitionKeys": {"k": "v"}}}]}

Every recordId must come back. `Ok` records are delivered with the returned data (and partition keys
for `!{partitionKeyFromLambda:k}`), `Dropped` ones are counted and not delivered, `ProcessingFailed`
ones go to the error output as `processing-failed`. A missing recordId, a malformed answer or an
exception in the hook makes the records concerned `processing-failed`: the sink never crashes on it.
Configs name a hook as `package.module:function`.
"""

from __future__ import annotations

import base64
import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from sinks.records import RecordColumns

OK, DROPPED, PROCESSING_FAILED = "Ok", "Dropped", "ProcessingFailed"
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Outcome:
    """What the hook decided for one record."""

    result: str  # Ok | Dropped | ProcessingFailed
    data: bytes | None = None
    partition_keys: dict[str, str] | None = None
    message: str = ""


def load_handler(reference: str) -> Handler:
    """`package.module:function` -> the callable; ConfigError says what is wrong."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        msg = f"transform {reference!r}: write it as package.module:function"
        raise ConfigError(msg)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"transform {reference!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?"
        raise ConfigError(msg) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        msg = f"transform {reference!r}: {module_name} has no callable {attribute!r}"
        raise ConfigError(msg)
    return handler


def record_id(records: RecordColumns, row: int) -> str:
    return f"{records.topic}:{records.partition}:{records.offsets[row]}"


def apply(handler: Handler, records: RecordColumns, stream_name: str) -> list[Outcome]:
    """Run the hook over `records`; one Outcome per record, in order."""
    ids = [record_id(records, i) for i in range(len(records))]
    event = {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": f"arn:tidelake:firehose:local:000000000000:deliverystream/{stream_name}",
        "region": "local",
        "records": [
            {
                "recordId": rid,
                "approximateArrivalTimestamp": timestamp,
                "data": base64.b64encode(value or b"").decode("ascii"),
            }
            for rid, timestamp, value in zip(ids, records.timestamps, records.values, strict=True)
        ],
    }
    try:
        answer = handler(event, None)
    except Exception as exc:  # a user's hook may raise anything; the batch fails, the sink does not
        failed = f"transform raised {exc.__class__.__name__}: {exc}"
        return [Outcome(PROCESSING_FAILED, message=failed)] * len(records)
    answered = answer.get("records") if isinstance(answer, dict) else None
    if not isinstance(answered, list):
        failed = f"transform returned {type(answer).__name__}, expected a dict with a 'records' list"
        return [Outcome(PROCESSING_FAILED, message=failed)] * len(records)
    by_id = {item.get("recordId"): item for item in answered if isinstance(item, dict)}
    return [_outcome(by_id.get(rid)) for rid in ids]


def _outcome(item: dict[str, Any] | None) -> Outcome:
    if item is None:
        return Outcome(PROCESSING_FAILED, message="transform returned no result for this recordId")
    result = item.get("result")
    if result == DROPPED:
        return Outcome(DROPPED)
    if result == PROCESSING_FAILED:
        return Outcome(
            PROCESSING_FAILED, message=str(item.get("errorMessage") or "transform: ProcessingFailed")
        )
    if result != OK:
        return Outcome(
            PROCESSING_FAILED,
            message=f"transform returned result {result!r}; expected Ok, Dropped or ProcessingFailed",
        )
    try:
        data = base64.b64decode(item.get("data") or "", validate=True)
    except (ValueError, TypeError) as exc:
        return Outcome(PROCESSING_FAILED, message=f"transform returned data that is not base64: {exc}")
    keys = (item.get("metadata") or {}).get("partitionKeys")
    return Outcome(OK, data, {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else None)
