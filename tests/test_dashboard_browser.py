"""The real dashboard process (``dashboard_command``) driven by Debian's chromium through Playwright.

Streamlit renders in the browser, so everything here waits for text to appear rather than reading
HTML. Screenshots go to ``test-artifacts/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.harness import environ_without_settings, unavailable
from tests.harness.dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NS,
    USER,
    DashboardProcess,
    event,
    minute_floor,
    minute_rates,
    spread,
)
from tests.harness.mosquitto import MosquittoServer
from tests.test_recording_formats import START_NS, generated
from twitchwatch.collector.recordings import open_recording
from twitchwatch.collector.recordings.formats.wfdb import WfdbReader
from twitchwatch.processing.journal import Factor
from twitchwatch.processing.recordings import DetectionRun, LaneSummary, plan_detection
from twitchwatch.processing.store import open_store

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
def dashboard(store_url: str, tmp_path: Path, mosquitto: MosquittoServer) -> Iterator[DashboardProcess]:
    _require_chromium()
    server = DashboardProcess.start(store_url, tmp_path, mosquitto.url)
    yield server
    code = server.stop()
    assert code == 0, f"dashboard exited with {code}; log:\n{server.log_tail()}"


@pytest.fixture
def simulator(mosquitto: MosquittoServer, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``twitchwatch simulate`` publishing one muscle in real time into the harness broker."""
    env = environ_without_settings()
    env.update(TWITCHWATCH_MQTT_URL=mosquitto.url, TWITCHWATCH_USER=USER, HOME=str(tmp_path))
    argv = [sys.executable, "-m", "twitchwatch", "simulate", "--muscle", "calf_left", "--duration", "5m"]
    with (tmp_path / "simulate.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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


def open_page(page: Page, dashboard: DashboardProcess, title: str) -> None:
    """Load the app and pick a page in the sidebar menu, as a person would. (A deep link such as
    /live works too, but Streamlit's frontend first probes /live/_stcore/… for a base path, and
    the 404s it gets would count as browser errors here.)"""
    page.goto(dashboard.url)
    nav = page.locator("[data-testid='stSidebarNav']")
    nav.get_by_text(title, exact=True).click(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=RENDER_TIMEOUT_MS)


def table(page: Page, column: str) -> Locator:
    return page.locator("[data-testid='stTable']").filter(has_text=column)


def cell(row: Locator, column_index: int) -> str:
    return row.locator("td").nth(column_index).inner_text()


def test_overview_and_time_range(dashboard: DashboardProcess, store_url: str, page: Page) -> None:
    page.goto(dashboard.url)
    frequency_heading = page.get_by_role("heading", name="Twitch frequency by muscle")
    expect(frequency_heading).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("twitchwatch is not a medical device", exact=False)).to_be_visible()
    for heading in ("Body map", "Twitches by hour of day", "Timeline", "Individual events"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    frequency_table = table(page, "per-hour basis")
    for muscle in MUSCLES:
        expect(frequency_table.get_by_text(muscle, exact=True)).to_be_visible()
    # Charts are drawn by vega-embed as SVG: bars, heatmap, hourly bars, scatter.
    expect(page.locator("[data-testid='stVegaLiteChart'] svg")).to_have_count(4, timeout=RENDER_TIMEOUT_MS)
    body_map = page.locator("img[alt^='Body map']")
    expect(body_map).to_be_visible()
    assert body_map.evaluate("img => img.complete && img.naturalWidth > 0"), "the body map did not render"
    svg = base64.b64decode(str(body_map.get_attribute("src")).split(",", 1)[1]).decode()
    assert 'data-muscle="calf_left"' in svg
    assert 'data-muscle="calf_right"' in svg
    expect(page.locator("[data-testid='stException']")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^Last 24 h: "))).to_be_visible()
    calf_left = frequency_table.locator("tr", has_text="calf_left")
    assert cell(calf_left, 2) == f"{10 / 24:.2f}"  # twitches per hour over 24 h
    screenshot(page, "overview-last-24h.png")

    page.locator("[data-testid='stSidebar']").get_by_text("Last 1 h", exact=True).click()
    expect(page.get_by_text(re.compile(r"^Last 1 h: "))).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(calf_left.locator("td").nth(2)).to_have_text("10.00")  # the same 10 twitches over 1 h
    screenshot(page, "overview-last-1h.png")

    # The range section reruns on its own: a muscle's first twitch appears without a reload.
    with open_store(store_url) as store:
        store.write_events([event("neck_left", time.time_ns())])
    expect(frequency_table.get_by_text("neck_left", exact=True)).to_be_visible(timeout=RANGE_TIMEOUT_MS)


def test_live_page_updates_by_itself(
    dashboard: DashboardProcess, store_url: str, page: Page, simulator: subprocess.Popen[bytes]
) -> None:
    open_page(page, dashboard, "Live")
    expect(page.get_by_role("heading", name="Devices")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("twitchwatch is not a medical device", exact=False)).to_be_visible()

    # Twitch counts come from the store: none in the last 60 s, then three written now.
    summary = page.get_by_text(re.compile(r"^Last 60 s: ")).first
    expect(summary).to_have_text(re.compile(r"^Last 60 s: 0 twitches"), timeout=LIVE_TIMEOUT_MS)
    now = time.time_ns()
    with open_store(store_url) as store:
        store.write_events(
            [event("calf_left", now - 2 * NS), event("calf_left", now - NS), event("calf_right", now)]
        )
    expect(summary).to_have_text(re.compile(r"^Last 60 s: 3 twitches"), timeout=LIVE_TIMEOUT_MS)

    # The simulator's device shows up with its frames, and its signal is drawn.
    devices = table(page, "frames received")
    row = devices.locator("tr", has_text="online")
    # The simulator is a fresh Python process: on a loaded machine its first frame can take a while.
    expect(row).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="calf_left · emg")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    frames_column = 6
    first = int(cell(row, frames_column))
    screenshot(page, "live-first-look.png")
    expect(row.locator("td").nth(frames_column)).not_to_have_text(str(first), timeout=LIVE_TIMEOUT_MS)
    second = int(cell(row, frames_column))
    assert second > first
    screenshot(page, "live-second-look.png")
    assert simulator.poll() is None, "the simulator stopped early; see simulate.log"


def test_the_live_page_button_marks_a_felt_twitch(
    dashboard: DashboardProcess, store_url: str, page: Page
) -> None:
    """ "I felt that" from the browser: pick where, press the button; the mark is in the store, compared on
    the History page."""
    with open_store(store_url) as store:
        store.write_events([event("calf_left", time.time_ns() - 2 * NS)])
    open_page(page, dashboard, "Live")
    button = page.get_by_role("button", name="I felt a twitch")
    expect(button).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    where = page.get_by_role("combobox", name="Where")
    expect(where).to_have_value("not sure where")
    where.click()
    page.get_by_role("option", name="calf_left", exact=True).click()
    expect(where).to_have_value("calf_left")
    before = time.time_ns()
    button.click()
    expect(page.get_by_text(re.compile(r"^Marked a felt twitch on calf_left at "))).to_be_visible(
        timeout=RENDER_TIMEOUT_MS
    )
    screenshot(page, "live-felt.png")
    with open_store(store_url) as store:
        [entry] = store.journal_entries(user=USER)
    assert (entry.factor, entry.muscle) == (Factor.FELT, "calf_left")
    assert before - 5 * NS <= entry.time_ns <= time.time_ns()

    open_page(page, dashboard, "History")
    felt = table(page, "felt, with a detection near")
    expect(felt.locator("tr", has_text="all muscles")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    assert cell(felt.locator("tr", has_text="all muscles"), 1) == "1"


def test_history_journal_and_report_pages(dashboard: DashboardProcess, store_url: str, page: Page) -> None:
    # calf_left worn two 5-hour stretches 2 and 4 days ago: whatever the zone, each gives a day worn
    # ≥ 2.5 h, so the per-hour trend has two days to fit and its chart is drawn.
    now = time.time_ns()
    with open_store(store_url) as store:
        for days_ago in (4, 2):
            start = minute_floor(now) - days_ago * 24 * 60 * MIN
            store.write_rates(minute_rates("calf_left", start, 300, 60.0))
    open_page(page, dashboard, "History")
    expect(page.get_by_role("heading", name="Twitches per day")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    daily = table(page, "calf_right").filter(has_not_text="change per week")
    expect(daily.locator("tbody tr")).to_have_count(14)  # the default range: the last 14 days
    # day, calf_left, its hours at rest, its hours worn, calf_right, its hours at rest, its hours worn
    rows = daily.locator("tbody tr").all()
    total = sum(int(cell(r, 1)) + int(cell(r, 4)) for r in rows)
    assert total == 16  # every seeded twitch is in the last 14 days
    # A stretch split at midnight may leave a few minutes on one day: shown "< 0.1 h" (at most 0.05 h).
    worn = [
        0.025 if c == "< 0.1 h" else float(c.removesuffix(" h"))
        for c in (cell(r, 3) for r in rows)
        if c != "—"
    ]
    assert 2 <= len(worn) <= 4, worn  # each stretch on one day or split over two
    assert sum(worn) == pytest.approx(10.0, abs=0.25), worn
    expect(table(page, "change per week").get_by_text("calf_left", exact=True)).to_be_visible()
    # Both charts drawn by vega-embed: the daily bars and the per-hour trend.
    expect(page.locator("[data-testid='stVegaLiteChart'] svg")).to_have_count(2, timeout=RENDER_TIMEOUT_MS)
    screenshot(page, "history.png")

    open_page(page, dashboard, "Journal")
    expect(page.get_by_role("heading", name="Add an entry")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("No journal entries", exact=False)).to_be_visible()
    page.get_by_label("Amount").fill("2 cups of coffee")
    page.get_by_role("button", name="Add entry").click()
    entries = table(page, "factor").filter(has_text="2 cups of coffee")
    expect(entries).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    expect(entries.get_by_text("caffeine", exact=True)).to_be_visible()
    # calf_left has time at rest (the hours worn above, all at rest), so the rate comparison has its row.
    effects = table(page, "per hour at rest after")
    expect(effects.locator("tr", has_text="calf_left").get_by_text("caffeine", exact=True)).to_be_visible()
    screenshot(page, "journal.png")

    open_page(page, dashboard, "Report")
    expect(page.get_by_role("heading", name="By muscle")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("Last 30 d: 16 twitches on 2 muscles.", exact=False)).to_be_visible()
    screenshot(page, "report.png")
    with page.expect_download(timeout=RENDER_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download PDF").click()
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / "report.pdf"
    download.value.save_as(pdf)
    assert download.value.suggested_filename.endswith(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF-")


def _detected(path: Path) -> tuple[list[LaneSummary], int]:
    """What ``detect``'s code path finds in ``path``: the lanes' summaries and the number of events."""
    with open_recording(path) as reader:
        plan = plan_detection(reader.recording)
        run = DetectionRun(plan)
        found = sum(len(run.feed(chunk)) for chunk in reader.chunks(plan.groups))
        found += len(run.finish())
    return run.lane_summaries, found


def test_analyse_page_runs_the_detectors_over_an_uploaded_recording(
    dashboard: DashboardProcess, page: Page, tmp_path: Path
) -> None:
    """A generated EMG and accelerometer recording (20 twitches a minute) as a WFDB record, uploaded as
    a person would (its header and its signal file together): the page shows what ``detect`` finds,
    lane by lane and event by event, and stores nothing. A file no reader takes gets a message."""
    series, _ = generated()
    header = WfdbReader.write(tmp_path / "upload.hea", series, START_NS)
    lanes, found = _detected(header)
    assert found >= 10  # the 30-s recording has twitches to show
    open_page(page, dashboard, "Analyse")
    uploader = page.locator("[data-testid='stFileUploader'] input[type='file']")
    uploader.set_input_files([str(header), str(header.with_suffix(".dat"))])
    page.get_by_role("button", name="Analyse", exact=True).click()
    expect(page.get_by_role("heading", name="What was found")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("upload.hea: WFDB, 0:30, 2 detector lane(s) from 4 channel(s)")).to_be_visible()
    summary = table(page, "twitches per minute at rest")
    for s in lanes:
        row = summary.locator("tr", has_text=s.lane.label)
        assert cell(row, 6) == str(s.twitches), s.lane.label
    events = table(page, "duration (ms)")
    expect(events.locator("tbody tr")).to_have_count(found)
    expect(page.locator("[data-testid='stVegaLiteChart'] svg")).to_have_count(1, timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Download events (CSV)")).to_be_visible()
    screenshot(page, "analyse.png")

    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list\nmilk\n")
    open_page(page, dashboard, "Analyse")  # a new session: a fresh uploader
    uploader.set_input_files([str(notes)])
    page.get_by_role("button", name="Analyse", exact=True).click()
    expect(page.get_by_text("Could not analyse notes.txt: notes.txt: neither", exact=False)).to_be_visible(
        timeout=RENDER_TIMEOUT_MS
    )
    expect(page.locator("[data-testid='stException']")).to_have_count(0)
