"""The real dashboard process (``dashboard_command``) driven by Debian's chromium through Playwright.

Streamlit renders in the browser, so everything here waits for text to appear rather than reading
HTML. Screenshots go to ``test-artifacts/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from processing.store import EventStore, open_store
from tests.harness import unavailable
from tests.harness.dashboard import CHROMIUM, CHROMIUM_ARGS, NS, DashboardProcess, event, spread

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MUSCLES = ("calf_left", "calf_right")
RENDER_TIMEOUT_MS = 60_000
LIVE_TIMEOUT_MS = 20_000  # the live section refreshes every 2 s; allow for a slow 2-core machine
RANGE_TIMEOUT_MS = 40_000  # frequency and timeline refresh every 10 s
MIN = 60 * NS


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: install Debian's 'chromium' package (make test does this)")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """Two muscles with events spread over the last hour, none in the last 5 minutes."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    now = time.time_ns()
    with open_store(url) as store:
        store.write_events(
            spread("calf_left", 10, now - 55 * MIN, step_s=300)
            + spread("calf_right", 6, now - 50 * MIN, step_s=420)
        )
    return url


@pytest.fixture
def dashboard(store_url: str, tmp_path: Path) -> Iterator[DashboardProcess]:
    _require_chromium()
    server = DashboardProcess.start(store_url, tmp_path)
    yield server
    code = server.stop()
    assert code == 0, f"dashboard exited with {code}; log:\n{server.log_tail()}"


@pytest.fixture
def browser() -> Iterator[Browser]:
    _require_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page that fails the test if the browser logs an error (a Vega spec the frontend cannot
    draw shows up only there: the chart is just left blank)."""
    # Streamlit scrolls inside its own container, so a full-page screenshot is only the viewport:
    # a tall viewport gets the whole dashboard into one picture.
    context = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, "browser errors:\n" + "\n".join(errors)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def live_summary(page: Page) -> str:
    return page.get_by_text(re.compile(r"^Last 60 s: ")).first.inner_text()


def test_dashboard_in_a_real_browser(dashboard: DashboardProcess, store_url: str, page: Page) -> None:
    page.goto(dashboard.url)
    frequency_heading = page.get_by_role("heading", name="Twitch frequency by muscle")
    expect(frequency_heading).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("twitchwatch is not a medical device", exact=False)).to_be_visible()
    for heading in ("Live", "Timeline", "Individual events"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    frequency_table = page.locator("[data-testid='stTable']").filter(has_text="twitches per hour")
    for muscle in MUSCLES:
        expect(frequency_table.get_by_text(muscle, exact=True)).to_be_visible()
    # Charts are drawn by vega-embed as SVG: wait until all three (bars, hourly bars, scatter) are.
    expect(page.locator("[data-testid='stVegaLiteChart'] svg")).to_have_count(3, timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("[data-testid='stException']")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^Last 24 h: "))).to_be_visible()
    screenshot(page, "dashboard-last-24h.png")

    page.locator("[data-testid='stSidebar']").get_by_text("Last 1 h", exact=True).click()
    expect(page.get_by_text(re.compile(r"^Last 1 h: "))).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(frequency_table.get_by_text("10", exact=True)).to_be_visible()  # calf_left's 10 twitches
    screenshot(page, "dashboard-last-1h.png")

    # Live section: nothing in the last 60 s yet; add 3 twitches now and watch the page update itself.
    summary = page.get_by_text(re.compile(r"^Last 60 s: ")).first
    expect(summary).to_have_text(re.compile(r"^Last 60 s: 0 twitches"), timeout=LIVE_TIMEOUT_MS)
    before = live_summary(page)
    now = time.time_ns()
    store: EventStore
    with open_store(store_url) as store:
        store.write_events(
            [event("calf_left", now - 2 * NS), event("calf_left", now - NS), event("calf_right", now)]
        )
    expect(summary).to_have_text(re.compile(r"^Last 60 s: 3 twitches"), timeout=LIVE_TIMEOUT_MS)
    assert live_summary(page) != before
    live_table = page.locator("[data-testid='stTable']").filter(has_text="twitches, last 60 s")
    expect(live_table.locator("tr", has_text="calf_left")).to_contain_text("2")
    screenshot(page, "dashboard-live-updated.png")

    # The frequency section reruns on its own too: a muscle's first twitch appears without a reload.
    with open_store(store_url) as store:
        store.write_events([event("neck_left", time.time_ns())])
    expect(frequency_table.get_by_text("neck_left", exact=True)).to_be_visible(timeout=RANGE_TIMEOUT_MS)
