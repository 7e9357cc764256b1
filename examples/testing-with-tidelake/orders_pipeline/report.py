"""The revenue report, read from Athena (the `orders` table Firehose delivers)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3

REVENUE_SQL = (Path(__file__).parent / "revenue_by_country.sql").read_text()
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class ReportFailed(RuntimeError):
    """The query failed, or did not finish within the time given."""


def revenue_by_country(athena: Any = None, timeout_s: float = 60.0) -> list[tuple[str, int, int]]:
    """[(country, orders, revenue in cents)] by country. `athena` defaults to boto3's client from
    the environment. Raises ReportFailed with Athena's reason."""
    athena = athena or boto3.client("athena")
    query_id = athena.start_query_execution(QueryString=REVENUE_SQL)["QueryExecutionId"]
    deadline, pause = time.monotonic() + timeout_s, threading.Event()
    while True:
        status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if status["State"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            msg = f"the report query {query_id} was still {status['State']} after {timeout_s:g} s"
            raise ReportFailed(msg)
        pause.wait(0.05)
    if status["State"] != "SUCCEEDED":
        msg = f"the report query {status['State']}: {status.get('StateChangeReason')}"
        raise ReportFailed(msg)
    rows = athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]["Rows"][1:]  # 1st: header
    return [
        (r["Data"][0]["VarCharValue"], int(r["Data"][1]["VarCharValue"]), int(r["Data"][2]["VarCharValue"]))
        for r in rows
    ]
