"""`tidelake generate`: a seeded synthetic clickstream, like the Kinesis Data Generator.

Visitors arrive at random (Poisson), enter on a landing page, read for a while (exponential dwell
times), follow links through a small shop site and leave; crawlers walk many pages quickly.
With `hot_key_share`, that share of all events comes from one visitor (a scraper), to exercise
skewed partitions. The same seed always gives the same events, event times included: they start
at `start_time_us` (default 2026-01-01T00:00:00Z), not at the wall clock.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass

from producers.accesslog import is_bot, visitor_id_of
from producers.records import Record, event_id_of

DEFAULT_START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SOURCE = "generator"

#: Landing pages and how often visits start there.
ENTRY_PAGES = (
    ("/", 40),
    ("/m/", 20),
    ("/filter/laptops", 12),
    ("/product/{id}", 15),
    ("/blog/{slug}", 8),
    ("/search", 5),
)
#: Where a visitor goes next from each kind of page (weights); "exit" ends the visit.
NEXT_PAGES = {
    "home": (("/filter/{cat}", 45), ("/product/{id}", 20), ("/search", 10), ("exit", 25)),
    "filter": (("/product/{id}", 50), ("/filter/{cat}", 20), ("exit", 30)),
    "product": (("/product/{id}", 25), ("/basket", 15), ("/filter/{cat}", 20), ("exit", 40)),
    "basket": (("/checkout", 40), ("/product/{id}", 20), ("exit", 40)),
    "checkout": (("/checkout/done", 60), ("exit", 40)),
    "other": (("/", 30), ("/product/{id}", 30), ("exit", 40)),
}
CATEGORIES = ("laptops", "phones", "tv", "kitchen", "books", "toys", "shoes", "watches")
HUMAN_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
)
BOT_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
)
HOT_AGENT = "python-requests/2.32 (scraper)"


@dataclass(frozen=True)
class GeneratorOptions:
    count: int
    seed: int = 0
    visitors: int = 1_000  # distinct humans that may come back
    sessions_per_s: float = 2.0  # mean arrival rate of new visits, in event time
    bot_share: float = 0.04  # share of visits made by crawlers (they make ~30 % of events)
    hot_key_share: float = 0.0  # share of all events from one scraping visitor
    human_dwell_s: float = 30.0
    bot_dwell_s: float = 2.0
    start_time_us: int = DEFAULT_START_US


def _page_kind(page: str) -> str:
    if page in ("/", "/m/"):
        return "home"
    for prefix in ("filter", "product", "basket", "checkout"):
        if page.startswith(f"/{prefix}"):
            return prefix if prefix != "checkout" or page == "/checkout" else "other"
    return "other"


class _Visit:
    __slots__ = ("agent", "bot", "client", "page", "pages_left", "visitor")

    def __init__(self, client: str, agent: str, bot: bool, page: str, pages_left: int) -> None:
        self.client, self.agent, self.bot, self.page, self.pages_left = client, agent, bot, page, pages_left
        self.visitor = visitor_id_of(client, agent)
        if is_bot(agent) != bot:
            msg = f"user agent {agent!r} is classified is_bot={not bot}, expected {bot}"
            raise ValueError(msg)


class Generator:
    """Yields `count` records in event-time order; deterministic for a seed."""

    def __init__(self, options: GeneratorOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.source = f"{SOURCE}-seed-{options.seed}"

    def _fill(self, template: str) -> str:
        rng = self.rng
        return template.format(
            id=rng.randint(1000, 99999), cat=rng.choice(CATEGORIES), slug=f"post-{rng.randint(1, 300)}"
        )

    def _weighted(self, choices: tuple[tuple[str, int], ...]) -> str:
        pages, weights = zip(*choices, strict=True)
        return self.rng.choices(pages, weights)[0]

    def _new_visit(self) -> _Visit:
        rng, options = self.rng, self.options
        if rng.random() < options.bot_share:
            agent = rng.choice(BOT_AGENTS)
            client = f"198.51.100.{rng.randint(1, 254)}"  # documentation ranges (RFC 5737): never real
            return _Visit(client, agent, True, self._fill(rng.choice(ENTRY_PAGES)[0]), rng.randint(5, 30))
        number = rng.randrange(options.visitors)
        client = f"203.0.{113 + number // 254 % 3}.{number % 254 + 1}"
        agent = HUMAN_AGENTS[number % len(HUMAN_AGENTS)]
        return _Visit(client, agent, False, self._fill(self._weighted(ENTRY_PAGES)), 50)

    def _record(self, index: int, time_us: int, visit: _Visit, referrer: str | None) -> Record:
        rng = self.rng
        status = 200 if rng.random() < 0.95 else rng.choice((301, 302, 304, 404, 500))
        fields: dict[str, object] = {
            "visitor_id": visit.visitor,
            "method": "GET",
            "url": visit.page,
            "page": visit.page.split("?", 1)[0],
            "referrer": referrer,
            "status": status,
            "bytes": rng.randint(300, 60_000) if status == 200 else 0,
            "user_agent": visit.agent,
            "is_bot": visit.bot,
            "source": SOURCE,
        }
        raw = b"%d:%d:%s" % (self.options.seed, time_us, visit.page.encode())
        return Record(index + 1, event_id_of(self.source, index + 1, raw), time_us, visit.visitor, fields)

    def __iter__(self) -> Iterator[Record]:
        options, rng = self.options, self.rng
        hot = _Visit("192.0.2.66", HOT_AGENT, True, "/filter/laptops", 1 << 62)
        queue: list[tuple[int, int, _Visit, str | None]] = []  # (time_us, tiebreak, visit, referrer)
        next_arrival = options.start_time_us
        tiebreak = 0
        last_time_us = options.start_time_us
        for index in range(options.count):
            if options.hot_key_share and rng.random() < options.hot_key_share:
                hot.page = self._fill("/product/{id}")
                yield self._record(index, last_time_us, hot, None)
                continue
            while not queue or next_arrival <= queue[0][0]:
                tiebreak += 1
                heapq.heappush(queue, (next_arrival, tiebreak, self._new_visit(), None))
                next_arrival += max(1, int(rng.expovariate(options.sessions_per_s) * 1_000_000))
            time_us, _, visit, referrer = heapq.heappop(queue)
            last_time_us = time_us
            yield self._record(index, time_us, visit, referrer)
            visit.pages_left -= 1
            following = self._weighted(NEXT_PAGES[_page_kind(visit.page)])
            if (following == "exit" and not visit.bot) or visit.pages_left <= 0:
                continue
            if following == "exit":  # crawlers keep walking until their page budget is spent
                following = "/product/{id}"
            previous = visit.page
            visit.page = self._fill(following)
            dwell = options.bot_dwell_s if visit.bot else options.human_dwell_s
            tiebreak += 1
            heapq.heappush(
                queue,
                (time_us + max(1, int(rng.expovariate(1 / dwell) * 1_000_000)), tiebreak, visit, previous),
            )
