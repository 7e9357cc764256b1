"""Helpers for the queries tests: a lake of clickstream events written with pyarrow (no sinks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.events import CLICKSTREAM_FIELDS

_TYPES = {
    "string": pa.string(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
}
EVENTS_SCHEMA = pa.schema([(name, _TYPES[kind]) for name, kind, _ in CLICKSTREAM_FIELDS])


def event(when: str, visitor: str, page: str, status: int = 200, is_bot: bool = False) -> dict[str, Any]:
    """One clickstream event at `when` (`2026-11-23T07:15:00`, UTC)."""
    moment = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    return {
        "event_id": f"{visitor}-{when}-{page}",
        "event_time": moment,
        "visitor_id": visitor,
        "method": "GET",
        "url": page + "?x=1",
        "page": page,
        "referrer": None,
        "status": status,
        "bytes": 100,
        "user_agent": "test",
        "is_bot": is_bot,
        "source": "test",
    }


def write_events(lake: Path, events: list[dict[str, Any]], dataset: str = "clickstream_events") -> list[Path]:
    """Write events into `<lake>/<dataset>/dt=.../hour=.../part-0.parquet`, one file per hour."""
    by_hour: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in events:
        key = (e["event_time"].strftime("%Y-%m-%d"), e["event_time"].strftime("%H"))
        by_hour.setdefault(key, []).append(e)
    written = []
    for (day, hour), rows in sorted(by_hour.items()):
        folder = lake / dataset / f"dt={day}" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "part-0.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA), path)
        written.append(path)
    return written


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def lake_listing(lake: Path) -> list[str]:
    """Every file under the lake, hidden ones too, for "nothing was written" checks."""
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*"))
