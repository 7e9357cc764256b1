"""The Firehose data-transformation Lambda: each record's result is Ok, Dropped or ProcessingFailed.

- an order with `"status": "test"` is Dropped (never delivered);
- a record that is not a JSON object with a numeric `amount` is ProcessingFailed (Firehose writes
  it under the error output prefix);
- any other order is Ok, delivered with `amount_cents` (an integer) added, one JSON line.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def transform(data: bytes) -> tuple[str, bytes | None]:
    """(result, new data) for one record's data."""
    try:
        order = json.loads(data)
        amount = order["amount"]
        if not isinstance(amount, (int, float)) or isinstance(amount, bool):
            raise TypeError(amount)
    except (ValueError, KeyError, TypeError):
        return "ProcessingFailed", None
    if order.get("status") == "test":
        return "Dropped", None
    order["amount_cents"] = round(amount * 100)
    return "Ok", json.dumps(order).encode() + b"\n"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point: {"records": [{"recordId", "data" (base64)}]} in, the same ids out."""
    out = []
    for record in event["records"]:
        result, data = transform(base64.b64decode(record["data"]))
        answer: dict[str, Any] = {"recordId": record["recordId"], "result": result}
        answer["data"] = base64.b64encode(data or b"").decode()
        out.append(answer)
    return {"records": out}
