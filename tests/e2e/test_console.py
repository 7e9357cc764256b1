"""The web console in a real browser (Debian's Chromium via Playwright) against `tidelake serve`.

One server (with `--token`, as a server off loopback always has) and one browser for the module;
each test gets its own browser context, so sessionStorage and routes never leak between tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from core.admin import describe_topics
from core.topics import CLICKSTREAM_EVENTS
from tests.e2e.console_browser import CHROMIUM_ARGS, chromium_path, serve
from tests.unit.queries_lake import event, write_events
from tidelake.broker import free_port

REPO = Path(__file__).resolve().parents[2]
TOKEN = "console-test-token"
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
    with serve(root / "lake", free_port(), kafka_bootstrap, root / "serve.log", token=TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Opens a page in a fresh context (no token kept); fails the test on any JavaScript error."""
    errors: list[str] = []
    pages: list[Page] = []

    def opener(url: str, width: int = 1400, height: int = 900) -> Page:
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        pages.append(page)
        page.goto(url)
        return page

    yield opener
    for page in pages:
        page.context.close()
    assert errors == [], f"JavaScript errors in the console: {errors}"


@pytest.fixture
def page(open_page: Callable[..., Page], console_url: str) -> Page:
    """The console opened from the URL `tidelake serve` prints for a token (`/?token=...`)."""
    return open_page(f"{console_url}/?token={TOKEN}")


def run(page: Page, sql: str) -> None:
    page.get_by_test_id("sql").fill(sql)
    page.get_by_test_id("run").click()


def result_rows(page: Page) -> list[list[str]]:
    """The grid's rows once the run has succeeded and its first page is shown."""
    # generous: on a loaded machine even a tiny query can take seconds
    expect(page.get_by_test_id("state")).to_have_text("SUCCEEDED", timeout=30_000)
    expect(page.get_by_test_id("page-label")).to_have_text("page 1", timeout=30_000)
    return grid_rows(page)


def page_scrolls_sideways(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth"))


def grid_rows(page: Page) -> list[list[str]]:
    return (
        page.get_by_test_id("grid")
        .locator("tr")
        .evaluate_all("rows => rows.slice(1).map(r => [...r.children].map(c => c.textContent))")
    )


def test_sidebar_table_runs_a_preview_with_exact_rows_and_bytes_scanned(page: Page, console_url: str) -> None:
    # opened from the URL `tidelake serve` prints: the token is kept, and gone from the address bar
    assert page.url == f"{console_url}/"
    assert page.evaluate("sessionStorage.getItem('tidelake-api-token')") == TOKEN
    expect(page.get_by_test_id("token-form")).to_be_hidden()
    table = page.get_by_test_id("table-clickstream_events")
    expect(table).to_be_visible()
    table.click()
    expect(page.get_by_test_id("sql")).to_have_value("SELECT *\nFROM clickstream_events\nLIMIT 10")
    expect(page.get_by_test_id("catalog")).to_contain_text("hour")
    expect(page.get_by_test_id("catalog")).to_contain_text("(partition)")

    run(
        page, "SELECT page, count(*) AS views FROM clickstream_events GROUP BY page ORDER BY views DESC, page"
    )
    assert result_rows(page) == [["/home", "3"], ["/cart", "1"], ["/checkout", "1"]]
    stats = page.get_by_test_id("stats")
    expect(stats).to_contain_text("3 rows · scanned")
    expect(stats).to_contain_text("cost $0.000050")  # the 10 MB minimum at $5 per TB
    expect(page.get_by_test_id("chart")).to_have_attribute("data-kind", "bar")
    expect(page.get_by_test_id("history")).to_contain_text("SUCCEEDED")


def test_a_named_query_shows_its_parameter_form_and_runs_with_changed_values(page: Page) -> None:
    page.get_by_test_id("named-top_pages_per_hour").click()
    sql = page.get_by_test_id("sql")
    # the named query's own text, placeholders and all: nothing is pasted into it
    expect(sql).to_have_value(re.compile(r"WHERE rank <= \$top\nORDER BY dt, hour, rank$"))
    expect(sql).to_have_value(re.compile(r"\(\$day IS NULL OR dt = \$day\)"))
    form = page.get_by_test_id("params-form")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("params-title")).to_have_text("top_pages_per_hour")
    expect(page.get_by_test_id("param-day")).to_contain_text("day date default NULL")
    expect(page.get_by_test_id("param-day")).to_contain_text("only this day (prunes dt partitions)")
    expect(page.get_by_test_id("param-top")).to_contain_text("top integer default 5")
    expect(page.get_by_test_id("param-top")).to_contain_text("pages per hour")
    expect(page.get_by_test_id("param-input-top")).to_have_value("5")
    expect(page.get_by_test_id("param-input-include_bots")).to_have_value("false")
    expect(page.get_by_test_id("param-input-day")).to_have_value("")

    page.get_by_test_id("run").click()  # the defaults: bots excluded, top 5 of every hour
    assert result_rows(page) == [
        ["2026-11-23 07:00:00.000", "1", "/home", "2"],
        ["2026-11-23 07:00:00.000", "2", "/cart", "1"],
        ["2026-11-23 08:00:00.000", "1", "/checkout", "1"],
    ]

    page.get_by_test_id("param-input-day").fill("2026-11-23")
    page.get_by_test_id("param-input-hour").fill("8")
    page.get_by_test_id("param-input-include_bots").select_option("true")
    page.get_by_test_id("param-input-top").fill("2")
    page.get_by_test_id("run").click()
    assert result_rows(page) == [
        ["2026-11-23 08:00:00.000", "1", "/checkout", "1"],
        ["2026-11-23 08:00:00.000", "2", "/home", "1"],
    ]
    expect(page.get_by_test_id("history").locator("tr").nth(1)).to_contain_text(
        "[day=2026-11-23, hour=8, top=2, include_bots=true] -- The hour is"
    )
    page.get_by_test_id("named-top_pages_per_hour").click()  # a fresh form: the defaults again
    expect(page.get_by_test_id("param-input-hour")).to_have_value("")
    page.get_by_test_id("history").locator("tr").nth(1).click()  # reopens the form with its values
    expect(page.get_by_test_id("param-input-hour")).to_have_value("8")
    expect(page.get_by_test_id("param-input-day")).to_have_value("2026-11-23")
    expect(page.get_by_test_id("param-input-include_bots")).to_have_value("true")
    expect(page.get_by_test_id("param-input-top")).to_have_value("2")

    page.get_by_test_id("param-input-top").fill("two")
    page.get_by_test_id("param-input-top").press("Enter")  # Enter in the form runs it too
    expect(page.get_by_test_id("state")).to_have_text("FAILED")
    expect(page.get_by_test_id("error")).to_have_text(
        "parameter top must be INTEGER, got 'two' (example: 10)"
    )

    # edited text is plain SQL again: the form says so and Run sends the text
    sql.fill("SELECT 41 + 1 AS answer")
    expect(page.get_by_test_id("params-note")).to_contain_text("The SQL was edited")
    page.get_by_test_id("run").click()
    assert result_rows(page) == [["42"]]


def test_charts_follow_the_result_shape_and_can_be_switched_or_turned_off(page: Page) -> None:
    chart, controls = page.get_by_test_id("chart"), page.get_by_test_id("chart-controls")
    no_chart = {
        "one row": "SELECT page, count(*) AS views FROM clickstream_events WHERE page = '/home' GROUP BY page",
        "one column": "SELECT page FROM clickstream_events ORDER BY page",
        "numeric first column": "SELECT status, count(*) AS n FROM clickstream_events GROUP BY 1 ORDER BY 1",
        "no numeric measure": "SELECT page, visitor_id FROM clickstream_events ORDER BY 1, 2",
    }
    for why, sql in no_chart.items():
        run(page, sql)
        result_rows(page)
        assert chart.get_attribute("data-kind") == "none", why
        expect(controls).to_be_hidden()
        expect(chart.locator("svg")).to_have_count(0)

    # a category axis and one measure: bars, one per page
    run(
        page, "SELECT page, count(*) AS views FROM clickstream_events GROUP BY page ORDER BY views DESC, page"
    )
    result_rows(page)
    expect(chart).to_have_attribute("data-kind", "bar")
    expect(chart.locator("rect.bar")).to_have_count(3)
    expect(page.get_by_test_id("chart-legend")).to_have_text("page: views")
    page.get_by_test_id("chart-line").click()
    expect(chart).to_have_attribute("data-kind", "line")
    expect(chart.locator("polyline.line")).to_have_count(1)
    page.get_by_test_id("chart-off").click()
    expect(chart).to_have_attribute("data-kind", "off")
    expect(chart.locator("svg")).to_have_count(0)
    expect(controls).to_be_visible()  # so it can be turned on again

    # a time axis, a second category column and a measure: a line per page, and "off" lasts
    run(
        page,
        "SELECT date_trunc('hour', event_time) AS hour, page, count(*) AS views "
        "FROM clickstream_events GROUP BY ALL ORDER BY ALL",
    )
    result_rows(page)
    expect(chart).to_have_attribute("data-kind", "off")
    page.get_by_test_id("chart-line").click()
    lines = chart.locator("polyline.line")
    expect(lines).to_have_count(3)
    # series in order of their total views: /home 3 (2 at 07:00, 1 at 08:00), then /cart, /checkout
    assert lines.evaluate_all("ls => ls.map(l => l.dataset.series)") == ["/home", "/cart", "/checkout"]
    expect(page.get_by_test_id("chart-legend")).to_have_text("hour (views per page): /home/cart/checkout")
    page.get_by_test_id("chart-bar").click()
    expect(chart).to_have_attribute("data-kind", "bar")
    # 2 hours x 3 pages, with no bar where a page had no view that hour (/cart at 08:00, /checkout at 07:00)
    expect(chart.locator("rect.bar")).to_have_count(4)


def test_run_shows_the_new_runs_state_at_once(page: Page) -> None:
    run(page, "SELECT nope FROM clickstream_events")
    expect(page.get_by_test_id("state")).to_have_text("FAILED")
    expect(page.get_by_test_id("error")).to_be_visible()

    held: list[Route] = []

    def hold_start(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/queries", hold_start)
    run(page, "SELECT 1 AS one, 2 AS two")
    # the server has not even answered the POST yet: the old FAILED badge and error are gone
    expect(page.get_by_test_id("state")).to_have_text("QUEUED")
    expect(page.get_by_test_id("error")).to_be_hidden()
    expect(page.get_by_test_id("stats")).to_have_text("submitting…")
    assert len(held) == 1
    held[0].continue_()
    assert result_rows(page) == [["1", "2"]]
    page.unroute("**/api/queries")


def test_a_420_px_window_has_no_sideways_page_scroll_and_a_full_width_editor(
    open_page: Callable[..., Page], console_url: str
) -> None:
    page = open_page(f"{console_url}/?token={TOKEN}", width=420, height=800)
    editor = page.get_by_test_id("editor")
    expect(editor).to_be_visible()
    assert page_scrolls_sideways(page) is False
    box = editor.bounding_box()
    assert box is not None and box["width"] >= 380  # full width, less the page's padding
    expect(page.get_by_test_id("sidebar")).to_be_hidden()  # folded behind ☰

    page.get_by_test_id("toggle-sidebar").click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()
    assert page_scrolls_sideways(page) is False
    page.get_by_test_id("named-top_pages_per_hour").click()  # choosing folds it again
    expect(page.get_by_test_id("sidebar")).to_be_hidden()
    expect(page.get_by_test_id("params-form")).to_be_visible()
    assert page_scrolls_sideways(page) is False

    run(page, "SELECT * FROM clickstream_events ORDER BY event_time")  # 14 columns, wider than the window
    assert len(result_rows(page)) == 5
    expect(page.get_by_test_id("run")).to_be_in_viewport()
    assert page_scrolls_sideways(page) is False
    page.get_by_test_id("tab-pipeline").click()
    expect(page.get_by_test_id("m-events")).not_to_have_text("—")
    assert page_scrolls_sideways(page) is False


def test_api_docs_render_offline_from_this_server_alone(
    open_page: Callable[..., Page], console_url: str
) -> None:
    origin = urlsplit(console_url).netloc
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = open_page("about:blank")
    page.route("**/*", only_this_server)
    page.goto(f"{console_url}/docs", wait_until="commit")  # then wait for what Swagger UI draws
    title = page.get_by_role("heading", name=re.compile(r"^tidelake queries"))
    expect(title).to_be_visible(timeout=30_000)
    expect(page.locator('.opblock-summary-path[data-path="/api/library/{name}/run"]')).to_have_count(1)
    assert elsewhere == []


def test_a_token_is_asked_for_and_kept_for_the_tab(open_page: Callable[..., Page], console_url: str) -> None:
    # without it, every call is refused and the console asks (the URL with ?token=: see the first test)
    bare = open_page(console_url)
    form = bare.get_by_test_id("token-form")
    expect(form).to_be_visible()
    expect(bare.get_by_test_id("token-message")).to_have_text("This server wants a token.")
    expect(bare.get_by_test_id("catalog")).to_contain_text("catalog unavailable")
    bare.get_by_test_id("token-input").fill("wrong")
    bare.get_by_test_id("token-save").click()
    expect(bare.get_by_test_id("token-message")).to_have_text(
        "This server refused the token: enter the one it printed."
    )
    bare.get_by_test_id("token-input").fill(TOKEN)
    bare.get_by_test_id("token-save").click()
    expect(form).to_be_hidden()
    expect(bare.get_by_test_id("table-clickstream_events")).to_be_visible()
    run(bare, "SELECT count(*) AS n FROM clickstream_events")
    assert result_rows(bare) == [["5"]]
    assert bare.evaluate("localStorage.length") == 0  # this tab only


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
        expect(counter).not_to_have_text(f"{before:,}", timeout=60_000)  # a loaded box starts it slowly
        moving = int(counter.inner_text().replace(",", ""))
        assert before < moving <= before + 3000
    finally:
        _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    (topic,) = describe_topics(kafka_bootstrap, [CLICKSTREAM_EVENTS])
    expect(counter).to_have_text(f"{topic.records:,}", timeout=10_000)
    assert topic.records >= before + 3000
    expect(page.get_by_test_id("topics")).to_contain_text(CLICKSTREAM_EVENTS)
