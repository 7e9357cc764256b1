"""The web console in a real browser (Debian's Chromium via Playwright) against `tidelake serve`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from core.admin import describe_topics
from core.topics import CLICKSTREAM_EVENTS
from tests.e2e.console_browser import CHROMIUM_ARGS, chromium_path, serve
from tests.unit.queries_lake import event, write_events
from tidelake.broker import free_port

REPO = Path(__file__).resolve().parents[2]
EVENTS = [
    event("2026-11-23T07:00:01", "v1", "/home"),
    event("2026-11-23T07:05:00", "v2", "/home"),
    event("2026-11-23T07:10:00", "v1", "/cart", status=404),
    event("2026-11-23T08:00:00", "v3", "/home", is_bot=True),
    event("2026-11-23T08:30:00", "v2", "/checkout"),
]


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[str]:
    root = tmp_path_factory.mktemp("console")
    write_events(root / "lake", EVENTS)
    with serve(root / "lake", free_port(), kafka_bootstrap, root / "serve.log") as url:
        yield url


@pytest.fixture
def page(console_url: str, tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(console_url)
        try:
            yield page
        finally:
            page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            browser.close()
        assert errors == [], f"JavaScript errors in the console: {errors}"


def run(page: Page, sql: str) -> None:
    page.get_by_test_id("sql").fill(sql)
    page.get_by_test_id("run").click()


def grid_rows(page: Page) -> list[list[str]]:
    return (
        page.get_by_test_id("grid")
        .locator("tr")
        .evaluate_all("rows => rows.slice(1).map(r => [...r.children].map(c => c.textContent))")
    )


def test_sidebar_table_runs_a_preview_with_exact_rows_and_bytes_scanned(page: Page) -> None:
    table = page.get_by_test_id("table-clickstream_events")
    expect(table).to_be_visible()
    table.click()
    expect(page.get_by_test_id("sql")).to_have_value("SELECT *\nFROM clickstream_events\nLIMIT 10")
    expect(page.get_by_test_id("catalog")).to_contain_text("hour")
    expect(page.get_by_test_id("catalog")).to_contain_text("(partition)")

    run(
        page, "SELECT page, count(*) AS views FROM clickstream_events GROUP BY page ORDER BY views DESC, page"
    )
    expect(page.get_by_test_id("state")).to_have_text("SUCCEEDED")
    assert grid_rows(page) == [["/home", "3"], ["/cart", "1"], ["/checkout", "1"]]
    stats = page.get_by_test_id("stats")
    expect(stats).to_contain_text("3 rows · scanned")
    expect(stats).to_contain_text("cost $0.000050")  # the 10 MB minimum at $5 per TB
    expect(page.get_by_test_id("chart")).to_have_attribute("data-kind", "bar")
    expect(page.get_by_test_id("history")).to_contain_text("SUCCEEDED")


def test_a_named_query_opens_and_runs(page: Page) -> None:
    page.get_by_test_id("named-top_pages_per_hour").click()
    expect(page.get_by_test_id("sql")).to_have_value(re.compile(r"FROM clickstream_events"))
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("state")).to_have_text("SUCCEEDED")
    rows = grid_rows(page)
    # bots excluded by default: 07:00 has /home twice and /cart once; 08:00 has /checkout once
    assert [row[-2:] for row in rows] == [["/home", "2"], ["/cart", "1"], ["/checkout", "1"]]


def test_a_long_query_can_be_cancelled(page: Page) -> None:
    run(page, "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000) b")
    expect(page.get_by_test_id("state")).to_have_text("RUNNING")
    page.get_by_test_id("cancel").click()
    expect(page.get_by_test_id("state")).to_have_text("CANCELLED", timeout=15_000)
    expect(page.get_by_test_id("error")).to_contain_text("cancelled")


def test_a_refused_statement_shows_its_reason_and_writes_nothing(page: Page, console_url: str) -> None:
    run(page, "COPY (SELECT 1) TO '/tmp/tidelake-console-escape.csv'")
    expect(page.get_by_test_id("state")).to_have_text("FAILED")
    expect(page.get_by_test_id("error")).to_contain_text("COPY")
    assert not Path("/tmp/tidelake-console-escape.csv").exists()

    run(page, "SELEC page FROM clickstream_events")
    expect(page.get_by_test_id("state")).to_have_text("FAILED")
    expect(page.get_by_test_id("error")).to_contain_text("line 1")


def test_dashboard_counters_move_while_a_replay_runs(page: Page, kafka_bootstrap: str) -> None:
    page.get_by_test_id("tab-pipeline").click()
    counter = page.get_by_test_id("m-events")
    expect(counter).not_to_have_text("—")
    before = int(counter.inner_text().replace(",", ""))
    sample = REPO / "data" / "zanbil-access-10k" / "access-10k.log"
    replay = subprocess.Popen(
        [sys.executable, "-m", "tidelake.cli", "replay", str(sample), "--rate", "2000", "--count", "3000",
         "-b", kafka_bootstrap, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # while the replay runs, the counter shows a value between before and before + 3000
        expect(counter).not_to_have_text(f"{before:,}", timeout=20_000)
        moving = int(counter.inner_text().replace(",", ""))
        assert before < moving <= before + 3000
    finally:
        _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    (topic,) = describe_topics(kafka_bootstrap, [CLICKSTREAM_EVENTS])
    expect(counter).to_have_text(f"{topic.records:,}", timeout=10_000)
    assert topic.records >= before + 3000
    expect(page.get_by_test_id("topics")).to_contain_text(CLICKSTREAM_EVENTS)
