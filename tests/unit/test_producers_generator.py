"""The seeded generator: same seed, same events; sessions, bots and a hot key."""

from __future__ import annotations

import collections
import itertools
import re

from core.events import CLICKSTREAM_FIELDS
from producers.accesslog import is_bot
from producers.generator import HOT_AGENT, Generator, GeneratorOptions


def _events(**kwargs) -> list:
    return list(Generator(GeneratorOptions(**kwargs)))


def test_same_seed_gives_the_same_events_and_another_seed_does_not() -> None:
    first = [r.payload() for r in _events(count=3_000, seed=11)]
    again = [r.payload() for r in _events(count=3_000, seed=11)]
    other = [r.payload() for r in _events(count=3_000, seed=12)]
    assert first == again
    assert first != other
    assert len(first) == 3_000


def test_events_follow_the_clickstream_contract_in_event_time_order() -> None:
    records = _events(count=5_000, seed=1)
    assert all(a.time_us <= b.time_us for a, b in itertools.pairwise(records))
    payload = records[0].payload()
    assert list(payload) == [name for name, _, _ in CLICKSTREAM_FIELDS]
    assert payload["event_time"] == "2026-01-01T00:00:00.000000Z"
    assert len({r.event_id for r in records}) == 5_000
    assert all(r.key == r.fields["visitor_id"] for r in records)
    assert all(not re.search(r"\d+\.\d+\.\d+\.\d+", str(r.payload())) for r in records)


def test_visits_have_entry_pages_referrers_and_exits() -> None:
    records = _events(count=5_000, seed=2, bot_share=0.0)
    by_visitor = collections.defaultdict(list)
    for record in records:
        by_visitor[record.key].append(record)
    assert all(not r.fields["is_bot"] for r in records)
    entries = [hits[0] for hits in by_visitor.values()]
    assert all(hit.fields["referrer"] is None for hit in entries)
    followed = [r for hits in by_visitor.values() for r in hits[1:]]
    with_referrer = [r for r in followed if r.fields["referrer"] is not None]
    assert len(with_referrer) >= len(followed) // 2  # a revisit starts a new visit without referrer
    assert {r.fields["page"].split("/")[1] for r in records} >= {
        "",
        "product",
        "filter",
        "basket",
        "checkout",
    }


def test_bot_flag_agrees_with_the_user_agent_classifier() -> None:
    records = _events(count=5_000, seed=3, bot_share=0.2)
    assert all(r.fields["is_bot"] == is_bot(r.fields["user_agent"]) for r in records)
    bots = sum(r.fields["is_bot"] for r in records)
    assert 0 < bots < 5_000


def test_hot_key_takes_its_share_of_events() -> None:
    records = _events(count=20_000, seed=4, hot_key_share=0.25)
    hot = [r for r in records if r.fields["user_agent"] == HOT_AGENT]
    (top_key, top_count), _ = collections.Counter(r.key for r in records).most_common(2)
    assert top_key == hot[0].key
    assert top_count == len(hot)
    assert 4_500 <= len(hot) <= 5_500  # 25 % of 20,000, binomial spread well within ±500
