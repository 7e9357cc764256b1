"""Clickstream-shaped event dicts for stream-app tests, built from a seed (no producers import)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from core.events import format_event_time

T0 = dt.datetime(2019, 1, 22, 0, 0, 0, tzinfo=dt.UTC)
PAGES = ["/", "/product/1", "/product/2", "/cart", "/search", "/login"]


def clickstream(count: int, seed: int = 1, visitors: int = 25, spread_s: float = 2.0) -> list[dict[str, Any]]:
    """`count` events in time order, about `spread_s` apart, over `visitors` visitors."""
    rng = random.Random(seed)
    moment = T0
    events = []
    for i in range(count):
        moment += dt.timedelta(microseconds=rng.randrange(0, int(spread_s * 2_000_000)))
        visitor = f"v{rng.randrange(visitors):03d}"
        status = rng.choice([200, 200, 200, 200, 304, 404, 500])
        events.append(
            {
                "event_id": f"e{i:06d}",
                "event_time": format_event_time(moment),
                "visitor_id": visitor,
                "method": "GET",
                "url": rng.choice(PAGES) + "?q=1",
                "page": rng.choice(PAGES),
                "referrer": None,
                "status": status,
                "bytes": rng.randrange(100, 5000),
                "user_agent": "test",
                "is_bot": rng.random() < 0.1,
                "source": "test",
            }
        )
    return events
