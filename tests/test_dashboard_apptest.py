"""The real dashboard script (``twitchwatch/dashboard_entry.py``) under Streamlit's AppTest, reading a
real store seeded by each test: SQLite in tmp_path, and a fresh database on the harness's InfluxDB
(auth on). Every test runs on both. Expected numbers are computed from what each test seeds.

Pages are reached with ``AppTest.switch_page`` (paths relative to the entry script). The Live page's
raw signal comes from the harness's real Mosquitto; elsewhere the MQTT URL points at a closed port,
which also checks that every page works without a broker."""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import io
import json
import re
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import streamlit as st
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from tests.harness import free_port
from tests.harness.dashboard import NS, USER, MqttSender, event, minute_floor, minute_rates, spread
from tests.harness.influx import InfluxServer
from tests.harness.mosquitto import MosquittoServer
from twitchwatch import cli
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.dashboard import app, bodymap, data, history_view, live_view, report_view
from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.flags import Flag, FlagKind, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.localtime import day_of
from twitchwatch.processing.report import build_report
from twitchwatch.processing.store import EventStore, InfluxAuth, open_store

ENTRY = Path(__file__).resolve().parents[1] / "twitchwatch" / "dashboard_entry.py"
# Not the test machine's zone (UTC on CI), so a page that ignored TWITCHWATCH_TIMEZONE would show it.
ZONE = "America/New_York"
TZ = zoneinfo.ZoneInfo(ZONE)
MIN = 60 * NS


@dataclass(frozen=True)
class StoreTarget:
    """Where the dashboard reads from, as the environment tells it: URL plus InfluxDB credentials."""

    url: str
    auth: InfluxAuth | None = None  # None: no credentials (SQLite)


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def store(
    clean_env: None, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreTarget]:
    monkeypatch.setenv("TWITCHWATCH_USER", USER)
    monkeypatch.setenv("TWITCHWATCH_MQTT_URL", f"mqtt://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("TWITCHWATCH_TIMEZONE", ZONE)
    database: str | None = None
    server: InfluxServer | None = None
    if request.param == "sqlite":
        target = StoreTarget(f"sqlite:///{tmp_path / 'events.db'}")
    else:
        server = request.getfixturevalue("influxdb")
        assert isinstance(server, InfluxServer)
        database = f"apptest_{uuid.uuid4().hex[:12]}"
        server.query(f'CREATE DATABASE "{database}"')  # the worker's store creates it; the dashboard reads
        target = StoreTarget(f"influxdb://127.0.0.1:{server.port}/{database}", server.auth)
        monkeypatch.setenv("TWITCHWATCH_INFLUX_USERNAME", server.username)
        monkeypatch.setenv("TWITCHWATCH_INFLUX_PASSWORD", server.password)
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", target.url)
    # The entry script caches the open store per URL for the whole process; start and end clean
    # (clearing also closes the cached stores, via the cache's on_release).
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield target
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
        if server is not None and database is not None:
            server.drop_database(database)


def seed(target: StoreTarget, events: Sequence[TwitchEvent] = (), rates: Sequence[MinuteRate] = ()) -> None:
    store: EventStore = open_store(target.url, target.auth)
    try:
        store.write_events(events)
        store.write_rates(rates)
    finally:
        store.close()


PAGES = {
    "overview": "Overview",
    "live": "Live",
    "history": "History",
    "journal": "Journal",
    "report": "Report",
    "analyse": "Analyse",
}


def run_app() -> AppTest:
    at = AppTest.from_file(str(ENTRY), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def open_page(page: str, at: AppTest | None = None) -> AppTest:
    """Run the app, switch to ``page`` (a key of PAGES) and check its title and notice."""
    at = at or run_app()
    at.switch_page(f"../dashboard/pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == PAGES[page]
    assert at.warning[0].value == app.NOTICE
    return at


def headings(at: AppTest) -> list[str]:
    return [h.value for h in at.header] + [h.value for h in at.subheader]


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    tables = [t.value for t in at.table if column in t.value.columns]
    assert len(tables) == 1, f"expected one table with column {column!r}, found {len(tables)}"
    return tables[0]


def frequency(at: AppTest) -> dict[str, dict[str, str]]:
    """The frequency table as shown: muscle -> {column: text}."""
    table = table_with(at, "per-hour basis")
    return {str(row["muscle"]): {str(k): str(v) for k, v in row.items()} for row in table.to_dict("records")}


def live(at: AppTest) -> dict[str, tuple[int, int, str]]:
    table = table_with(at, "twitches, last 60 s")
    return {
        str(r["muscle"]): (
            int(r["twitches, last 60 s"]),
            int(r["twitches, last 10 min"]),
            str(r["latest twitch"]),
        )
        for r in table.to_dict("records")
    }


def charts(at: AppTest) -> list[pd.DataFrame]:
    """The data behind every altair chart on the page."""
    return [
        convert_arrow_bytes_to_pandas_df(node.proto.datasets[0].data.data)
        for node in at.get("vega_lite_chart")
    ]


def chart_with(at: AppTest, column: str) -> pd.DataFrame:
    """The data of the one chart that has ``column``: "twitches per hour at rest" (frequency bars),
    "hour" (timeline), "time" (individual events)."""
    found = [frame for frame in charts(at) if column in frame.columns]
    assert len(found) == 1, f"expected one chart with column {column!r}, found {len(found)}"
    return found[0]


def per_hour(twitches: int, hours: float) -> str:
    return f"{twitches / hours:.2f}"


def page_text(at: AppTest) -> str:
    texts = [
        *(e.value for e in at.markdown),
        *(e.value for e in at.caption),
        *(e.value for e in at.info),
        *(e.value for e in at.warning),
        *(e.value for e in at.error),
    ]
    return "\n".join(str(t) for t in texts)


# ---- tests -----------------------------------------------------------------------------------------
def test_empty_store_every_page_says_how_to_get_data(store: StoreTarget) -> None:
    at = run_app()
    assert at.title[0].value == "Overview"  # the default page
    assert at.warning[0].value == app.NOTICE
    [info] = at.info
    assert "make demo" in info.value
    assert "twitchwatch simulate" in info.value
    assert app.HEADING_FREQUENCY not in headings(at)
    assert not at.table

    at = open_page("live", at)
    # No broker: the page says so (once paho's first attempt failed) and the rest still works.
    at = rerun_until(at, lambda a: "is not reachable" in page_text(a), "the broker problem")
    assert "Last 60 s: 0 twitches · last 10 min: 0 twitches" in page_text(at)
    assert live_view.NO_DEVICES in page_text(at)

    at = open_page("history", at)
    assert "No twitches on these days" in page_text(at)
    at = open_page("journal", at)
    assert "No journal entries" in page_text(at)
    at = open_page("report", at)
    assert report_view.EMPTY in page_text(at)
    assert "Last 30 d: 0 twitches on 0 muscles." in page_text(at)
    at = open_page("analyse", at)
    assert "Nothing here is saved to your history" in page_text(at)
    assert not at.exception


def test_one_muscle_without_monitored_time_uses_the_range_length(store: StoreTarget) -> None:
    now = time.time_ns()
    seed(store, spread("calf_left", 7, now - 50 * MIN, step_s=300))
    at = run_app()
    assert at.warning[0].value == app.NOTICE
    for heading in (app.HEADING_FREQUENCY, app.HEADING_BODY_MAP, app.HEADING_TIMELINE, app.HEADING_EVENTS):
        assert heading in headings(at)
    assert frequency(at) == {
        "calf_left": {
            "muscle": "calf_left",
            "twitches": "7",
            "twitches per hour at rest": per_hour(7, 24),  # the default range is the last 24 h
            "hours at rest": "—",  # no per-minute records: neither known
            "hours worn": "—",
            "per-hour basis": "range length",
            "before rest tracking": "—",
            "during movement (not counted)": "0",
            "sustained activity": "0",
        }
    }
    assert "length of the selected range" in page_text(at)
    bars = chart_with(at, "twitches per hour at rest")
    assert bars[["muscle", "twitches"]].to_dict("records") == [{"muscle": "calf_left", "twitches": 7}]
    assert chart_with(at, "hour")["twitches"].sum() == 7
    assert len(chart_with(at, "time")) == 7


def test_several_muscles_show_their_names_and_exact_rates(store: StoreTarget) -> None:
    now = time.time_ns()
    this_minute = minute_floor(now)
    left = spread("calf_left", 12, now - 55 * MIN, step_s=240)
    right = spread("calf_right", 3, now - 40 * MIN, step_s=60) + spread(
        "calf_right", 2, now - 30 * MIN, step_s=60, kind=EventKind.MYOCLONIC_JERK
    )
    neck = spread("neck", 6, now - 90 * MIN, step_s=60)
    recent = [event("calf_left", now - 20 * NS), event("calf_right", now - 5 * MIN)]
    # calf_left worn 30 min, at rest half of each minute; calf_right worn 45 s of 20 minutes, all at rest.
    rates = minute_rates("calf_left", this_minute - 30 * MIN, 30, 60.0, rest_s=30.0) + minute_rates(
        "calf_right", this_minute - 20 * MIN, 20, 45.0
    )
    seed(store, left + right + neck + recent, rates)
    at = run_app()

    shown = frequency(at)
    assert list(shown) == ["calf_left", "calf_right", "neck"]
    # 30 min × 30 s = 0.25 h and 20 min × 45 s = 0.25 h at rest; neck has no rates: 24 h range.
    assert shown["calf_left"]["twitches"] == "13"
    assert shown["calf_left"]["twitches per hour at rest"] == per_hour(13, 0.25) == "52.00"
    assert (shown["calf_left"]["hours at rest"], shown["calf_left"]["hours worn"]) == ("0.25", "0.50")
    assert shown["calf_left"]["per-hour basis"] == "time at rest"
    assert shown["calf_right"]["twitches"] == "6"
    assert shown["calf_right"]["twitches per hour at rest"] == per_hour(6, 0.25) == "24.00"
    assert shown["calf_right"]["hours at rest"] == "0.25"
    assert shown["neck"]["twitches per hour at rest"] == per_hour(6, 24) == "0.25"
    assert shown["neck"]["per-hour basis"] == "range length"
    assert "divided by the range length instead" in page_text(at)
    assert "At rest under 1 h in this range: calf_left (15 min), calf_right (15 min)." in page_text(at)

    bars = chart_with(at, "twitches per hour at rest").set_index("muscle")["twitches per hour at rest"]
    assert bars.to_dict() == {"calf_left": 52.0, "calf_right": 24.0, "neck": 0.25}
    hourly = chart_with(at, "hour").groupby("muscle")["twitches"].sum().to_dict()
    assert hourly == {"calf_left": 13, "calf_right": 6, "neck": 6}

    assert [h for h in headings(at) if h == app.HEADING_BODY_MAP]
    at = open_page("live", at)
    shown_live = live(at)
    assert {m: counts[:2] for m, counts in shown_live.items()} == {
        "calf_left": (1, 1),  # the one 20 s ago; the spread ends 11 min ago
        "calf_right": (0, 1),
        "neck": (0, 0),
    }
    assert shown_live["neck"][2] == "—"
    assert "Last 60 s: 1 twitch · last 10 min: 2 twitches" in page_text(at)
    # The rate divides by the time at rest in the window: 9–10 of its minutes have calf rates (the running
    # minute has none written), worn whole and at rest half of each for calf_left, worn and at rest 45 s of
    # each for calf_right; neck has none, so no rate at all.
    rates_now = table_with(at, "worn, last 10 min").set_index("muscle")
    worn = rates_now["worn, last 10 min"].str.removesuffix(" min").astype(float).to_dict()
    rest = rates_now["at rest, last 10 min"].str.removesuffix(" min").astype(float).to_dict()
    assert 9.0 <= worn["calf_left"] <= 10.0
    assert rest["calf_left"] == pytest.approx(0.5 * worn["calf_left"], abs=0.1)
    assert worn["calf_right"] == pytest.approx(0.75 * worn["calf_left"], abs=0.1)
    assert worn["neck"] == 0.0
    per_hour_now = rates_now["per hour at rest, last 10 min"].to_dict()
    assert per_hour_now["calf_left"] in {"12", "13"}  # 1 twitch in 4.5–5 minutes at rest
    assert per_hour_now["calf_right"] in {"8", "9"}  # 1 in 6.75–7.5 minutes, not 6 (1 in 10)
    assert per_hour_now["neck"] == "—"


def test_sustained_activity_and_artifacts_are_not_twitches(store: StoreTarget) -> None:
    now = time.time_ns()
    twitches = spread("calf_left", 4, now - 40 * MIN, step_s=120)
    sustained = spread("calf_left", 3, now - 30 * MIN, step_s=300, kind=EventKind.SUSTAINED)
    artifacts = spread("calf_left", 2, now - 18 * MIN, step_s=60, kind=EventKind.ARTIFACT)
    fresh_sustained = [event("calf_left", now - 10 * NS, EventKind.SUSTAINED)]
    seed(store, twitches + sustained + artifacts + fresh_sustained)
    at = run_app()

    row = frequency(at)["calf_left"]
    assert row["twitches"] == "4"
    assert row["twitches per hour at rest"] == per_hour(4, 24)
    assert row["sustained activity"] == "4"
    assert app.SUSTAINED_NOTE in page_text(at)
    assert chart_with(at, "hour")["twitches"].sum() == 4
    # The scatter shows twitches and sustained activity, never artifacts.
    assert sorted(chart_with(at, "time")["kind"].value_counts().items()) == [
        ("fasciculation", 4),
        ("sustained", 4),
    ]
    assert live(open_page("live", at))["calf_left"][:2] == (0, 0)


def test_source_filter(store: StoreTarget) -> None:
    now = time.time_ns()
    live_events = spread("calf_left", 5, now - 50 * MIN, step_s=60)
    replay_events = spread("calf_left", 3, now - 45 * MIN, step_s=30, source="replay") + spread(
        "calf_right", 2, now - 30 * NS, step_s=10, source="replay"
    )
    seed(store, live_events + replay_events)
    at = run_app()

    def counts() -> dict[str, str]:
        return {m: row["twitches"] for m, row in frequency(at).items()}

    assert at.radio(key="source").value == "all"
    assert counts() == {"calf_left": "8", "calf_right": "2"}

    at.radio(key="source").set_value("live").run()
    assert not at.exception
    assert counts() == {"calf_left": "5"}
    assert "source: live" in page_text(at)

    at.radio(key="source").set_value("replay").run()
    assert counts() == {"calf_left": "3", "calf_right": "2"}
    assert frequency(at)["calf_right"]["twitches per hour at rest"] == per_hour(2, 24)


def test_a_replay_of_a_live_session_counts_once_under_all(store: StoreTarget) -> None:
    """The user recorded a live session and replayed it (recorded timestamps): the same twitches twice in
    the store. "all" counts them once, on the Overview and the History page; each source alone shows them."""
    now = time.time_ns()
    start = minute_floor(now) - 60 * MIN
    live_events = spread("calf_left", 5, start + 5 * MIN, step_s=60)
    rerun = [dataclasses.replace(e, source="replay", session_id="rerun") for e in live_events]
    live_rates = minute_rates("calf_left", start, 30, 60.0)
    replay_rates = minute_rates("calf_left", start, 30, 60.0, source="replay")
    # A replayed recording of another hour that was never seen live counts, under "all" too.
    imported = spread("calf_right", 2, start - 120 * MIN, step_s=60, source="replay")
    seed(store, live_events + rerun + imported, live_rates + replay_rates)
    at = run_app()
    for source, expected in (("all", {"calf_left": "5", "calf_right": "2"}), ("live", {"calf_left": "5"})):
        at.radio(key="source").set_value(source).run()
        assert {m: row["twitches"] for m, row in frequency(at).items()} == expected, source
    at.radio(key="source").set_value("all").run()
    assert frequency(at)["calf_left"]["hours worn"] == "0.50"  # worn time once, not twice
    # The scatter shows them once too (the page opens on the last 24 h: calf_left's 5 and calf_right's 2);
    # its caption said 12.
    assert [c.value.split(" ")[0] for c in at.caption if " events. Dot size" in c.value] == ["7"]

    at = open_page("history", at)
    today = day_of(start + 5 * MIN, TZ)
    assert daily_shown(at)[today.isoformat()]["calf_left"] == 5


def test_time_range_selector(store: StoreTarget) -> None:
    now = time.time_ns()
    seed(
        store,
        spread("calf_left", 4, now - 3 * 60 * MIN, step_s=60)
        + spread("calf_left", 2, now - 30 * MIN, step_s=60),
    )
    at = run_app()
    assert at.radio(key="range").options == list(data.RANGE_CHOICES)

    at.radio(key="range").set_value("Last 1 h").run()
    row = frequency(at)["calf_left"]
    assert (row["twitches"], row["twitches per hour at rest"], row["per-hour basis"]) == (
        "2",
        "2.00",
        "range length",
    )

    at.radio(key="range").set_value("Last 6 h").run()
    row = frequency(at)["calf_left"]
    assert (row["twitches"], row["twitches per hour at rest"]) == ("6", per_hour(6, 6))

    at.radio(key="range").set_value("Custom dates").run()
    today = dt.date.today()
    at.date_input(key="dates").set_value((today - dt.timedelta(days=1), today)).run()
    assert not at.exception
    assert frequency(at)["calf_left"]["twitches"] == "6"
    at.date_input(key="dates").set_value((today - dt.timedelta(days=9), today - dt.timedelta(days=8))).run()
    assert not at.exception
    assert "Nothing recorded in this range" in page_text(at)


def test_data_outside_the_range_gets_a_message_not_an_error(store: StoreTarget) -> None:
    seed(store, spread("calf_left", 3, time.time_ns() - 3 * 24 * 60 * MIN, step_s=60))
    at = run_app()
    assert "Nothing recorded in this range" in page_text(at)
    assert live(open_page("live", at)) == {"calf_left": (0, 0, "—")}


def test_scatter_is_hidden_above_its_cap(store: StoreTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "MAX_SCATTER_EVENTS", 3)
    seed(store, spread("calf_left", 4, time.time_ns() - 30 * MIN, step_s=60))
    at = run_app()
    assert "More than 3 events in this range" in page_text(at)
    assert all("time" not in frame.columns for frame in charts(at))


def test_bad_configuration_is_reported_on_the_page(
    store: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", "postgres://nope/db")
    at = run_app()
    [error] = at.error
    assert "TWITCHWATCH_STORE_URL" in error.value


# ---- Overview: body map, heatmap, flags ------------------------------------------------------------------
def body_map_svg(at: AppTest) -> str:
    [element] = [h for h in at.get("html") if "Body map" in h.proto.body]
    src = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', element.proto.body)
    assert src is not None
    return base64.b64decode(src.group(1)).decode()


def fills(svg: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for muscle, fill in re.findall(r'<ellipse data-muscle="([^"]+)"[^>]* fill="(#[0-9a-f]{6})"', svg):
        found.setdefault(muscle, set()).add(fill)
    return found


def test_many_muscles_body_map_and_hour_of_day_heatmap(store: StoreTarget) -> None:
    now = time.time_ns()
    counts = {"calf_left": 12, "calf_right": 6, "forearm_left": 3, "thigh_right": 1, "sensor_x": 4}
    seeded = [
        e for i, (m, n) in enumerate(counts.items()) for e in spread(m, n, now - (100 + i) * MIN, step_s=61)
    ]
    seed(store, seeded)
    at = run_app()

    per_hour_shown = {m: row["twitches per hour at rest"] for m, row in frequency(at).items()}
    assert per_hour_shown == {m: per_hour(n, 24) for m, n in counts.items()}
    svg = body_map_svg(at)
    top = 12 / 24
    assert fills(svg) == {m: {bodymap.colour(n / 24, top)} for m, n in counts.items() if m != "sensor_x"}
    assert fills(svg)["calf_left"] == {"#bd0026"}  # the highest rate gets the darkest colour
    shown = {r["muscle"]: r["on the body map"] for r in table_with(at, "on the body map").to_dict("records")}
    assert shown["sensor_x"] == "no: name not recognised"
    assert shown["calf_left"] == "yes (#bd0026)"

    # Heatmap: every seeded twitch in the local hour of day it happened, zero elsewhere.
    tz = TZ
    expected: dict[tuple[str, int], int] = {}
    for e in seeded:
        key = (e.muscle, dt.datetime.fromtimestamp(e.start_ns / NS, tz).hour)
        expected[key] = expected.get(key, 0) + 1
    heat = chart_with(at, "hour of day")
    assert len(heat) == 24 * len(counts)
    got = {
        (r["muscle"], int(r["hour of day"])): int(r["twitches"])
        for r in heat.to_dict("records")
        if r["twitches"]
    }
    assert got == expected


def flag(kind: FlagKind, muscle: str, first: dt.date, last: dt.date) -> Flag:
    return Flag(
        user=USER,
        kind=kind,
        muscle=muscle,
        rule="twitching on at least 5 of 7 days, for at least 14 days",
        summary="twitched on 19 of 21 days",
        numbers={"days": 19.0},
        first_day=first,
        last_day=last,
        days=(first, last),
        raised_at_ns=time.time_ns(),
    )


def test_overview_shows_the_flags_with_rule_and_dates(store: StoreTarget) -> None:
    seed(store, spread("calf_left", 2, time.time_ns() - 30 * MIN, step_s=60))
    first, last = dt.date(2026, 10, 1), dt.date(2026, 10, 21)
    flags = FlagSet(USER, time.time_ns(), "worker", (flag(FlagKind.PERSISTENT, "calf_left", first, last),))
    target_store = open_store(store.url, store.auth)
    try:
        target_store.replace_flags(flags)
    finally:
        target_store.close()
    at = run_app()
    assert app.HEADING_FLAGS in headings(at)
    [row] = table_with(at, "rule").to_dict("records")
    assert row == {
        "flag": "persistent",
        "where": "calf_left",
        "what was seen": "twitched on 19 of 21 days",
        "rule": "twitching on at least 5 of 7 days, for at least 14 days",
        "dates": "2026-10-01 – 2026-10-21",
    }
    assert "by the worker" in page_text(at)


def test_overview_without_flags_says_so(store: StoreTarget) -> None:
    seed(store, spread("calf_left", 2, time.time_ns() - 30 * MIN, step_s=60))
    at = run_app()
    assert app.NO_FLAGS in [s.value for s in at.success]
    assert "by the dashboard" in page_text(at)  # nothing stored: computed on the spot
    computed = flags_caption(at)
    time.sleep(1.1)  # the caption shows whole seconds: a recomputation would show a later one
    at.run()
    assert flags_caption(at) == computed  # reruns reuse it for a few minutes instead of recomputing
    st.cache_data.clear()
    time.sleep(1.1)
    at.run()
    assert flags_caption(at) != computed  # ... and it is the cache that kept it


def flags_caption(at: AppTest) -> str:
    [caption] = [c.value for c in at.caption if c.value.startswith("Computed ")]
    return str(caption)


# ---- Live: raw signal and device status from a real broker ----------------------------------------------
def rerun_until(at: AppTest, done: Callable[[AppTest], bool], what: str, timeout: float = 60.0) -> AppTest:
    """Rerun the page until ``done``: the feed receives on paho's thread, between runs."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        if done(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not shown within {timeout} s; page:\n{page_text(at)}")
        time.sleep(0.2)


def frame(sequence: int, t0_ns: int, raw: npt.NDArray[np.int16]) -> bytes:
    return encode(
        Frame(0, sequence, t0_ns, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw.reshape(-1, 1))
    )


def test_live_page_shows_signal_status_and_gaps(
    store: StoreTarget, mosquitto: MosquittoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWITCHWATCH_MQTT_URL", mosquitto.url)
    device = f"dev{uuid.uuid4().hex[:8]}"
    t0 = time.time_ns() - 2 * NS
    spike_at = t0 + 150 * NS // 1000  # in the second frame (sequence 1)
    moved_at = t0 + 250 * NS // 1000
    not_counted = dataclasses.replace(
        event("calf_left", moved_at, EventKind.DURING_MOVEMENT),
        reason="fasciculation: movement 0.5 s (leg/acc)",
    )
    # The second is too old for the signal window; the third was found during movement.
    seed(store, [event("calf_left", spike_at), event("calf_left", t0 - 60 * NS), not_counted])
    at = open_page("live")
    at = rerun_until(at, lambda a: "Raw signal from the MQTT broker" in page_text(a), "the broker connection")

    status = DeviceStatus(
        "online", "sim", "live", "s1", 77, {"emg": StreamInfo(0, "emg", 1000.0, ("calf_left",))}
    )
    raw = np.zeros(100, dtype=np.int16)
    spike = raw.copy()
    spike[50] = 900
    with MqttSender(mosquitto.url) as sender:
        sender.send(f"twitchwatch/{USER}/{device}/status", status.to_json(), retain=True)
        for seq, payload in ((0, raw), (1, spike), (2, raw), (5, raw)):  # 3 and 4 lost
            sender.send(
                f"twitchwatch/{USER}/{device}/raw/emg", frame(seq, t0 + seq * 100 * NS // 1000, payload)
            )
        sender.send(f"twitchwatch/{USER}/{device}/raw/emg", b"\x01\x02")  # not a frame
        sender.send(f"twitchwatch/{USER}/{device}/status", b"", retain=True)  # leave the broker clean
        sender.send(f"twitchwatch/{USER}/{device}/status", status.to_json())  # not retained this time

    def device_row(a: AppTest) -> dict[str, str] | None:
        tables = [t.value for t in a.table if "frames received" in t.value.columns]
        rows = [r for r in tables[0].to_dict("records") if r["device"] == device] if tables else []
        return {str(k): str(v) for k, v in rows[0].items()} if rows else None

    at = rerun_until(
        at,
        lambda a: (
            (row := device_row(a)) is not None and row["bad frames"] == "1" and row["state"] == "online"
        ),
        "the device's frames",
    )
    row = device_row(at)
    assert row is not None
    assert row["frames received"] == "4"
    assert row["frames missing (gaps)"] == "2"
    assert row["battery"] == "77 %"
    assert row["streams"] == "emg 1000 Hz × 1"
    assert row["data quality"] == f"{100 * 4 / 7:.1f} %"
    assert "calf_left · emg" in headings(at)

    [chart] = [n for n in at.get("vega_lite_chart")]
    signal, markers, moved = (convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets)
    assert signal["value"].max() == 900 * 0.5  # the spike in µV, kept by the decimation
    assert len(signal) == 400  # 4 frames of 100 samples: under the display cap, nothing dropped
    assert markers["kind"].tolist() == ["fasciculation"]  # the old event is outside the window
    newest = t0 + 5 * 100 * NS // 1000 + 99 * NS // 1000
    assert markers["seconds"].tolist() == pytest.approx([(spike_at - newest) / NS])
    # Shown apart (grey dashes), with why it was not counted.
    assert moved[["kind", "reason"]].to_dict("records") == [
        {"kind": "during_movement", "reason": "fasciculation: movement 0.5 s (leg/acc)"}
    ]
    assert "1 twitch-like event(s) during movement, not counted" in page_text(at)


# ---- History ----------------------------------------------------------------------------------------------
def at_noon(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(12), tzinfo=TZ).timestamp()) * NS


def with_session(events: list[TwitchEvent], session: str) -> list[TwitchEvent]:
    return [dataclasses.replace(e, session_id=session) for e in events]


def daily_shown(at: AppTest) -> dict[str, dict[str, int]]:
    """The daily table: day -> {muscle: twitches}, only days with any."""
    table = table_with(at, "day")
    rows = {}
    for r in table.to_dict("records"):
        counts = {str(k): int(v) for k, v in r.items() if k != "day" and " " not in str(k)}
        if any(counts.values()):
            rows[str(r["day"])] = counts
    return rows


def worn_shown(at: AppTest) -> dict[str, dict[str, str]]:
    """The daily table's hours worn: day -> {muscle: hours as shown}, only days worn."""
    rows = {}
    for r in table_with(at, "day").to_dict("records"):
        worn = {
            str(k).removesuffix(" hours worn"): str(v) for k, v in r.items() if str(k).endswith(" hours worn")
        }
        if any(v != "—" for v in worn.values()):
            rows[str(r["day"])] = {m: v for m, v in worn.items() if v != "—"}
    return rows


def rest_shown(at: AppTest) -> dict[str, dict[str, str]]:
    """The daily table's hours at rest: day -> {muscle: as shown}, only days with any time at rest or
    before rest tracking."""
    rows = {}
    for r in table_with(at, "day").to_dict("records"):
        rest = {
            str(k).removesuffix(" hours at rest"): str(v)
            for k, v in r.items()
            if str(k).endswith(" hours at rest")
        }
        kept = {m: v for m, v in rest.items() if v != "0 h"}
        if kept:
            rows[str(r["day"])] = kept
    return rows


def test_history_daily_counts_trend_and_filters(store: StoreTarget) -> None:
    today = day_of(time.time_ns(), TZ)
    d3, d2, d1 = (today - dt.timedelta(days=n) for n in (3, 2, 1))
    seeded = (
        with_session(spread("calf_left", 3, at_noon(d3), step_s=60), "a")
        + with_session(spread("calf_left", 5, at_noon(d2), step_s=60, source="replay"), "b")
        + with_session(spread("calf_right", 2, at_noon(d1), step_s=60), "a")
        + spread("calf_right", 4, at_noon(d1) + 600 * NS, step_s=60, kind=EventKind.SUSTAINED)
    )
    worn = (
        minute_rates("calf_left", at_noon(d3), 180, 60.0)
        + minute_rates("calf_left", at_noon(d2), 180, 60.0, source="replay", rest_s=50.0)
        + minute_rates("calf_right", at_noon(d1), 120, 60.0)
    )
    seed(store, seeded, worn)
    at = open_page("history")
    assert daily_shown(at) == {
        d3.isoformat(): {"calf_left": 3, "calf_right": 0},
        d2.isoformat(): {"calf_left": 5, "calf_right": 0},
        d1.isoformat(): {"calf_left": 0, "calf_right": 2},  # sustained activity never counts
    }
    assert worn_shown(at) == {
        d3.isoformat(): {"calf_left": "3.0 h"},
        d2.isoformat(): {"calf_left": "3.0 h"},
        d1.isoformat(): {"calf_right": "2.0 h"},
    }
    assert rest_shown(at) == {
        d3.isoformat(): {"calf_left": "3.0 h"},
        d2.isoformat(): {"calf_left": "2.5 h"},  # 50 s of each minute
        d1.isoformat(): {"calf_right": "2.0 h"},
    }
    assert len(table_with(at, "day")) == history_view.DEFAULT_DAYS
    # Trend: least squares over the days at rest ≥ 2 h (not the 12 days without the sensor as zeros),
    # independently with numpy: 3 in 3 h at rest, then 5 in 2.5 h the next day.
    slope, _ = np.polyfit([0.0, 1.0], [3 / 3, 5 / 2.5], 1)
    trends = {r["muscle"]: r for r in table_with(at, "change per week").to_dict("records")}
    assert list(trends) == ["calf_left"]  # calf_right: one day worn, no trend
    assert trends["calf_left"]["change per week"] == f"{slope * 7:+.1f} per hour"
    assert trends["calf_left"]["twitches per hour at rest (mean)"] == f"{(3 / 3 + 5 / 2.5) / 2:.1f}"
    assert trends["calf_left"]["days"] == "2"

    at.radio(key="history_source").set_value("replay").run()
    assert daily_shown(at) == {d2.isoformat(): {"calf_left": 5}}
    assert worn_shown(at) == {d2.isoformat(): {"calf_left": "3.0 h"}}
    at.radio(key="history_source").set_value("all").run()
    assert at.selectbox(key="history_session").options == [history_view.ALL_SESSIONS, "a", "b"]
    at.selectbox(key="history_session").set_value("a").run()
    assert daily_shown(at) == {
        d3.isoformat(): {"calf_left": 3, "calf_right": 0},
        d1.isoformat(): {"calf_left": 0, "calf_right": 2},
    }
    assert worn_shown(at) == {}  # the minute rates carry no session: no hours, no per-hour trend
    assert "pick “all sessions”" in page_text(at)
    at.selectbox(key="history_session").set_value(history_view.ALL_SESSIONS).run()
    at.date_input(key="history_dates").set_value((d2, d1)).run()
    assert not at.exception
    assert len(table_with(at, "day")) == 2
    assert daily_shown(at) == {
        d2.isoformat(): {"calf_left": 5, "calf_right": 0},
        d1.isoformat(): {"calf_left": 0, "calf_right": 2},
    }
    at.date_input(key="history_dates").set_value((d1, d1)).run()
    assert "A trend needs at least two days with ≥ 2 h at rest each" in page_text(at)


def test_minutes_before_rest_tracking_and_events_during_movement_are_shown_apart(store: StoreTarget) -> None:
    """An upgrade two hours ago: the hour before it has rows without rest (6 twitches, counted during
    movement too by the old worker); since, the muscle was at rest half of each minute (4 twitches) and
    3 twitch-like events came during movement. Every page shows the rate at rest from the new minutes
    only, the old hour apart, and the 3 as not counted — never the old hour as all-rest."""
    now = time.time_ns()
    upgrade = now - now % (60 * MIN) - 120 * MIN  # on the hour: the Overview's counts come per hour
    before = spread("calf_left", 6, upgrade - 50 * MIN, step_s=300)
    after = spread("calf_left", 4, upgrade + 10 * MIN, step_s=600)
    moved = [
        dataclasses.replace(e, reason="fasciculation: movement 9.0 s (sim1/acc)")
        for e in spread("calf_left", 3, upgrade + 12 * MIN, step_s=60, kind=EventKind.DURING_MOVEMENT)
    ]
    rates = minute_rates("calf_left", upgrade - 60 * MIN, 60, 60.0, rest_s=None)
    rates += minute_rates("calf_left", upgrade, 60, 60.0, rest_s=30.0)
    seed(store, before + after + moved, rates)

    at = run_app()
    row = frequency(at)["calf_left"]
    assert row["twitches"] == "10"
    assert row["twitches per hour at rest"] == per_hour(4, 0.5) == "8.00"  # not 10 in 2 h worn
    assert (row["hours at rest"], row["hours worn"]) == ("0.50", "2.00")
    assert row["before rest tracking"] == "6 in 1.0 h worn (6.00 per hour worn)"
    assert row["during movement (not counted)"] == "3"
    assert data.UNTRACKED_CAPTION in page_text(at)
    reasons = chart_with(at, "time").query("kind == 'during_movement'")["reason"].tolist()
    assert reasons == ["fasciculation: movement 9.0 s (sim1/acc)"] * 3

    at = open_page("history", at)
    assert "before rest tracking" in " ".join(str(v) for v in table_with(at, "day").to_numpy().ravel())
    listed = table_with(at, "why not counted").to_dict("records")
    assert [r["why not counted"] for r in listed] == ["fasciculation: movement 9.0 s (sim1/acc)"] * 3

    at = open_page("report", at)
    shown = {r["muscle"]: r for r in table_with(at, "first recorded").to_dict("records")}
    assert shown["calf_left"]["twitches at rest"] == "4"
    assert shown["calf_left"]["twitches per hour at rest"] == "8.00"
    assert shown["calf_left"]["before rest tracking"] == "6 in 1.0 h worn (6.00 per hour worn)"
    assert shown["calf_left"]["during movement (not counted)"] == "3"
    assert "recorded before rest tracking" in page_text(at)


def test_history_counts_late_evening_twitches_on_their_local_day(store: StoreTarget) -> None:
    """23:30 in the configured zone (New York) is already the next day in UTC, the test machine's zone."""
    day = day_of(time.time_ns(), TZ) - dt.timedelta(days=2)
    late = int(dt.datetime.combine(day, dt.time(23, 30), tzinfo=TZ).timestamp()) * NS
    seed(store, spread("calf_left", 3, late, step_s=60))
    at = open_page("history")
    assert daily_shown(at) == {day.isoformat(): {"calf_left": 3}}
    assert f"({ZONE})" in page_text(at)


# ---- I felt that ------------------------------------------------------------------------------------------
def test_the_live_page_button_marks_a_felt_twitch_and_history_compares_it(store: StoreTarget) -> None:
    now = time.time_ns()
    seed(store, [event("calf_left", now - 3 * NS), event("calf_left", now - 40 * MIN)])
    at = open_page("live")
    assert at.selectbox(key="felt_muscle").options == [live_view.SOMEWHERE, "calf_left"]
    at.selectbox(key="felt_muscle").set_value("calf_left")
    at = click(at, live_view.FELT_BUTTON)
    [entry] = stored_journal(store)
    assert (entry.factor, entry.muscle) == (Factor.FELT, "calf_left")
    assert now <= entry.time_ns <= time.time_ns()
    assert any("Marked a felt twitch on calf_left at" in s.value for s in at.success)

    at = open_page("history", at)
    [overall, calf] = table_with(at, "felt, with a detection near").to_dict("records")
    assert (overall["muscle"], overall["felt"], overall["felt, with a detection near"]) == (
        "all muscles",
        "1",
        "1",
    )
    assert (overall["detected"], overall["detected, near a felt one"]) == ("2", "1")
    assert calf["muscle"] == "calf_left"
    assert "it is not a test of the detector" in page_text(at)
    at = open_page("report", at)
    assert table_with(at, "felt, with a detection near").iloc[0]["felt"] == "1"


# ---- Journal ----------------------------------------------------------------------------------------------
def stored_journal(target: StoreTarget) -> list[JournalEntry]:
    s = open_store(target.url, target.auth)
    try:
        return s.journal_entries(user=USER)
    finally:
        s.close()


def click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_journal_add_list_and_delete_only_after_confirmation(store: StoreTarget) -> None:
    at = open_page("journal")
    assert "No journal entries" in page_text(at)
    yesterday = dt.date.today() - dt.timedelta(days=1)
    at.selectbox(key="journal_factor").set_value("caffeine")
    at.date_input(key="journal_day").set_value(yesterday)
    at.time_input(key="journal_time").set_value(dt.time(8, 30))
    at.text_input(key="journal_amount").input("2 cups")
    at = click(at, "Add entry")

    [entry] = stored_journal(store)
    assert (entry.factor, entry.amount) == (Factor.CAFFEINE, "2 cups")
    assert entry.time_ns == at_noon(yesterday) - int(3.5 * 3600) * NS  # 08:30 local
    [row] = table_with(at, "factor").to_dict("records")
    assert row == {
        "time": f"{yesterday.isoformat()} 08:30",
        "factor": "caffeine",
        "amount": "2 cups",
        "muscle": "",
        "note": "",
    }
    assert any("Added:" in s.value for s in at.success)

    at = click(at, "Delete…")
    assert any("This cannot be undone" in w.value for w in at.warning)
    assert len(stored_journal(store)) == 1  # asking deletes nothing
    at = click(at, "Cancel")
    assert len(stored_journal(store)) == 1
    at = click(at, "Delete…")
    at = click(at, "Yes, delete it")
    assert stored_journal(store) == []
    assert "No journal entries" in page_text(at)


def test_journal_rate_after_each_factor_vs_baseline(
    store: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    now_minute = minute_floor(time.time_ns())
    coffee = now_minute - 10 * 3600 * NS
    # 6 h after the coffee: 2 twitches a minute; 3 h before it: 1 a minute (the baseline). 60 s each.
    after = [
        MinuteRate(USER, "calf_left", "sim1", "live", coffee + i * 60 * NS, 2, 60.0, 60.0)
        for i in range(6 * 60)
    ]
    before = [
        MinuteRate(USER, "calf_left", "sim1", "live", coffee - (i + 1) * 60 * NS, 1, 60.0, 60.0)
        for i in range(3 * 60)
    ]
    seed(store, rates=after + before)
    s = open_store(store.url, store.auth)
    try:
        s.add_journal_entry(JournalEntry(USER, coffee, Factor.CAFFEINE, "1 espresso"))
    finally:
        s.close()
    at = open_page("journal")
    [row] = table_with(at, "after ÷ baseline").to_dict("records")
    assert row["factor"] == "caffeine"
    assert row["muscle"] == "calf_left"
    assert row["per hour at rest after"] == "120.00"
    assert row["per hour at rest baseline"] == "60.00"
    assert row["after ÷ baseline"] == "×2.00"
    assert row["at rest after / baseline"] == "6.0 h / 3.0 h"
    assert row["window"] == "6 h after"

    # A configured 3 h window: the 3-6 h after the coffee (120/h) join the baseline.
    monkeypatch.setenv("TWITCHWATCH_JOURNAL_WINDOWS_H", '{"caffeine": 3}')
    [row] = table_with(open_page("journal"), "after ÷ baseline").to_dict("records")
    assert row["window"] == "3 h after"
    assert row["per hour at rest after"] == "120.00"
    assert row["per hour at rest baseline"] == f"{(3 * 60 + 3 * 120) / 6:.2f}"
    assert row["after ÷ baseline"] == f"×{120 / 90:.2f}"
    assert row["at rest after / baseline"] == "3.0 h / 6.0 h"


# ---- Report -----------------------------------------------------------------------------------------------
def test_report_page_summary_and_downloads(store: StoreTarget) -> None:
    now = time.time_ns()
    day = 24 * 60 * MIN
    seed(
        store,
        spread("calf_left", 4, now - 10 * day, step_s=60)
        + spread("calf_left", 6, now - 3 * day, step_s=60)
        + spread("calf_right", 2, now - 60 * MIN, step_s=60)
        + spread("calf_left", 3, now - 50 * MIN, step_s=60, kind=EventKind.SUSTAINED),
        minute_rates("calf_left", minute_floor(now) - 120 * MIN, 90, 60.0, rest_s=40.0),
    )
    at = open_page("report")
    assert "Last 30 d: 12 twitches on 2 muscles." in page_text(at)
    shown = {r["muscle"]: r for r in table_with(at, "first recorded").to_dict("records")}
    assert set(shown) == {"calf_left", "calf_right"}
    assert (shown["calf_left"]["twitches at rest"], shown["calf_left"]["sustained activity"]) == ("10", "3")
    assert (shown["calf_left"]["hours at rest"], shown["calf_left"]["hours worn"]) == ("1.0 h", "1.5 h")
    # The body map colours by twitches per hour at rest; calf_right has no time at rest, so no colour.
    assert fills(body_map_svg(at)) == {"calf_left": {"#bd0026"}}
    assert "Not coloured (no time at rest in this range): calf_right." in page_text(at)
    assert shown["calf_right"]["twitches at rest"] == "2"
    first_left = day_of(now - 10 * day, TZ)  # the day in the zone the page counts in, not UTC
    assert shown["calf_left"]["first recorded"] == first_left.isoformat()
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert set(buttons) == {"Download PDF", "Download CSV (daily counts)"}

    at.radio(key="report_period").set_value("Last 7 d").run()
    assert "Last 7 d: 8 twitches on 2 muscles." in page_text(at)
    assert " of 7 days, " in page_text(at)  # seven local days, today's so far included (it said 8)
    shown = {r["muscle"]: r for r in table_with(at, "first recorded").to_dict("records")}
    assert shown["calf_left"]["twitches at rest"] == "6"

    # Whole local days picked: the days of the first four twitches only.
    at.radio(key="report_period").set_value(data.CUSTOM_RANGE).run()
    ten_days_ago = day_of(now - 10 * day, zoneinfo.ZoneInfo(ZONE))
    at.date_input(key="report_dates").set_value((ten_days_ago, ten_days_ago)).run()
    span = f"{ten_days_ago.isoformat()} to {ten_days_ago.isoformat()}"
    first_day = sum(
        day_of(now - 10 * day + i * MIN, zoneinfo.ZoneInfo(ZONE)) == ten_days_ago for i in range(4)
    )
    assert f"{span}: {first_day} twitches on 1 muscle." in page_text(at)


def test_report_files_are_a_pdf_and_the_daily_csv(store: StoreTarget) -> None:
    now = time.time_ns()
    seed(store, spread("calf_left", 5, now - 30 * MIN, step_s=60))
    s = open_store(store.url, store.auth)
    try:
        report = build_report(s, now - 7 * 24 * 60 * MIN, now + NS, USER)
    finally:
        s.close()
    assert report_view.pdf_bytes(report).startswith(b"%PDF-")
    rows = list(csv.DictReader(io.StringIO(report_view.csv_text(report))))
    assert sum(int(r["twitches_at_rest"]) for r in rows if r["muscle"] == "calf_left") == 5


# ---- every page, one muscle and many --------------------------------------------------------------
@pytest.mark.parametrize(
    "counts",
    [
        pytest.param({"calf_left": 5}, id="one-muscle"),
        pytest.param(
            {"calf_left": 7, "calf_right": 3, "thigh_left": 1, "biceps_right": 4, "neck": 2, "sensor_b": 6},
            id="many-muscles",
        ),
    ],
)
def test_every_page_counts_every_muscle(store: StoreTarget, counts: dict[str, int]) -> None:
    now = time.time_ns()
    # Each muscle: its twitches 30-90 min ago, plus one 2 min ago (inside the Live page's 10 min only).
    seeded = [
        e for i, (m, n) in enumerate(counts.items()) for e in spread(m, n, now - (90 - i) * MIN, step_s=60)
    ]
    seeded += [event(m, now - 2 * MIN) for m in counts]
    seed(store, seeded)
    total = {m: n + 1 for m, n in counts.items()}

    at = run_app()
    assert {m: int(r["twitches"]) for m, r in frequency(at).items()} == total
    assert set(fills(body_map_svg(at))) == {m for m in counts if bodymap.place(m) is not None}

    at = open_page("live", at)
    assert {m: c[:2] for m, c in live(at).items()} == {m: (0, 1) for m in counts}

    at = open_page("history", at)
    daily = table_with(at, "day")
    assert {m: int(daily[m].astype(int).sum()) for m in counts} == total

    at = open_page("report", at)
    shown = {
        r["muscle"]: int(r["twitches at rest"]) for r in table_with(at, "first recorded").to_dict("records")
    }
    assert shown == total
    at = open_page("journal", at)
    assert "No journal entries" in page_text(at)


# ---- flags agree with `twitchwatch flags --json` ---------------------------------------------------
def test_overview_flags_agree_with_the_flags_command(
    store: StoreTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    # 21 UTC days up to yesterday: calf_left twitches 2 times an hour for 4 worn hours a day, the
    # control muscle is worn as long and never twitches.
    today = dt.datetime.now(dt.UTC).date()
    rates = []
    for back in range(21, 0, -1):
        day_ns = int(dt.datetime.combine(today - dt.timedelta(days=back), dt.time(), dt.UTC).timestamp()) * NS
        for hour in range(9, 13):
            first = day_ns + hour * 60 * MIN
            rates += [
                MinuteRate(
                    USER, "calf_left", "sim1", "live", first + i * MIN, 1 if i % 30 == 0 else 0, 60.0, 60.0
                )
                for i in range(60)
            ]
            rates += minute_rates("control_arm", first, 60, 60.0)
    seed(store, rates=rates)

    assert cli.main(["flags", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = [
        {
            "flag": f["kind"],
            "where": f["muscle"],
            "what was seen": f["summary"],
            "rule": f["rule"],
            "dates": f"{f['first_day']} – {f['last_day']}",
        }
        for f in printed["flags"]
    ]
    assert [f["kind"] for f in printed["flags"]] == ["persistent"]  # the control raises nothing

    at = run_app()
    assert table_with(at, "rule").to_dict("records") == expected


def test_history_asks_for_fewer_days_above_its_cap(
    store: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_view, "MAX_EVENTS", 3)
    seed(store, spread("calf_left", 4, time.time_ns() - 30 * MIN, step_s=60))
    at = open_page("history")
    assert "More than 3 twitches" in page_text(at)
    assert history_view.HEADING_DAILY not in headings(at)
