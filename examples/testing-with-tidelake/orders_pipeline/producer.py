"""Sends orders to a Kinesis data stream with boto3, 500 records a call (PutRecords' limit)."""

from __future__ import annotations

import json
from typing import Any

import boto3

BATCH = 500


class NotSent(RuntimeError):
    """Kinesis refused some records (FailedRecordCount > 0)."""


def send_orders(orders: list[dict[str, Any]], stream: str, kinesis: Any = None) -> int:
    """Put each order as one JSON record, partitioned by country; returns how many were sent.
    `kinesis` defaults to `boto3.client("kinesis")` (AWS_ENDPOINT_URL and region from the environment).
    Raises NotSent naming the first error when Kinesis refuses any record."""
    kinesis = kinesis or boto3.client("kinesis")
    records = [
        {"Data": json.dumps(order).encode(), "PartitionKey": str(order["country"])} for order in orders
    ]
    for start in range(0, len(records), BATCH):
        answer = kinesis.put_records(StreamName=stream, Records=records[start : start + BATCH])
        if answer["FailedRecordCount"]:
            first = next(r for r in answer["Records"] if "ErrorCode" in r)
            msg = f"{answer['FailedRecordCount']} records not sent to {stream}: {first['ErrorCode']} {first.get('ErrorMessage')}"
            raise NotSent(msg)
    return len(records)
