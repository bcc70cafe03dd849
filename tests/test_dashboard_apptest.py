"""The real dashboard script (``twitchwatch/dashboard_entry.py``) under Streamlit's AppTest, reading a
real store seeded by each test: SQLite in tmp_path, and a fresh database on the harness's InfluxDB
(auth on). Every test runs on both. Expected numbers are computed from what each test seeds.

Pages are reached with ``AppTest.switch_page`` (paths relative to the entry script). The Live page's
raw signal comes from the harness's real Mosquitto; elsewhere the MQTT URL points at a closed port,
which also checks that every page works without a broker."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from dashboard import app, data, live_view
from processing.events import EventKind, MinuteRate, TwitchEvent
from processing.store import EventStore, InfluxAuth, open_store
from tests.harness import free_port
from tests.harness.dashboard import NS, USER, event, minute_floor, minute_rates, spread
from tests.harness.influx import InfluxServer

ENTRY = Path(__file__).resolve().parents[1] / "twitchwatch" / "dashboard_entry.py"
MIN = 60 * NS


@dataclass(frozen=True)
class StoreTarget:
    """Where the dashboard reads from, as the environment tells it: URL plus InfluxDB credentials."""

    url: str
    auth: InfluxAuth | None = None  # None: no credentials (SQLite)


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreTarget]:
    for name in list(os.environ):
        if name.startswith("TWITCHWATCH_"):  # the developer's own settings must not leak in
            monkeypatch.delenv(name)
    monkeypatch.setenv("TWITCHWATCH_USER", USER)
    monkeypatch.setenv("TWITCHWATCH_MQTT_URL", f"mqtt://127.0.0.1:{free_port()}")  # nothing listens
    database: str | None = None
    server: InfluxServer | None = None
    if request.param == "sqlite":
        target = StoreTarget(f"sqlite:///{tmp_path / 'events.db'}")
    else:
        server = request.getfixturevalue("influxdb")
        assert isinstance(server, InfluxServer)
        database = f"apptest_{uuid.uuid4().hex[:12]}"  # the store creates it on open
        target = StoreTarget(f"influxdb://127.0.0.1:{server.port}/{database}", server.auth)
        monkeypatch.setenv("TWITCHWATCH_INFLUX_USERNAME", server.username)
        monkeypatch.setenv("TWITCHWATCH_INFLUX_PASSWORD", server.password)
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", target.url)
    # The entry script caches the open store per URL for the whole process; start and end clean
    # (clearing also closes the cached stores, via the cache's on_release).
    st.cache_resource.clear()
    try:
        yield target
    finally:
        st.cache_resource.clear()
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
    """The data of the one chart that has ``column``: "twitches per hour" (frequency bars),
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
    assert "Last 60 s: 0 twitches · last 10 min: 0 twitches" in page_text(at)
    assert "not reachable" in page_text(at)  # no broker: said, and the page still works
    assert live_view.NO_DEVICES in page_text(at)

    at = open_page("history", at)
    assert "No twitches on these days" in page_text(at)
    at = open_page("journal", at)
    assert "No journal entries" in page_text(at)


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
            "twitches per hour": per_hour(7, 24),  # the default range is the last 24 h
            "hours": "24.00",
            "per-hour basis": "range length",
            "sustained activity": "0",
        }
    }
    assert "length of the selected range" in page_text(at)
    bars = chart_with(at, "twitches per hour")
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
    rates = minute_rates("calf_left", this_minute - 30 * MIN, 30, 60.0) + minute_rates(
        "calf_right", this_minute - 20 * MIN, 20, 45.0
    )
    seed(store, left + right + neck + recent, rates)
    at = run_app()

    shown = frequency(at)
    assert list(shown) == ["calf_left", "calf_right", "neck"]
    # 30 min × 60 s = 0.5 h and 20 min × 45 s = 0.25 h monitored; neck has no rates: 24 h range.
    assert shown["calf_left"]["twitches"] == "13"
    assert shown["calf_left"]["twitches per hour"] == per_hour(13, 0.5) == "26.00"
    assert shown["calf_left"]["per-hour basis"] == "monitored time"
    assert shown["calf_right"]["twitches"] == "6"
    assert shown["calf_right"]["twitches per hour"] == per_hour(6, 0.25) == "24.00"
    assert shown["calf_right"]["hours"] == "0.25"
    assert shown["neck"]["twitches per hour"] == per_hour(6, 24) == "0.25"
    assert shown["neck"]["per-hour basis"] == "range length"
    assert "monitored time where it was recorded" in page_text(at)

    bars = chart_with(at, "twitches per hour").set_index("muscle")["twitches per hour"].to_dict()
    assert bars == {"calf_left": 26.0, "calf_right": 24.0, "neck": 0.25}
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
    assert row["twitches per hour"] == per_hour(4, 24)
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
    assert frequency(at)["calf_right"]["twitches per hour"] == per_hour(2, 24)


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
    assert (row["twitches"], row["twitches per hour"], row["hours"]) == ("2", "2.00", "1.00")

    at.radio(key="range").set_value("Last 6 h").run()
    row = frequency(at)["calf_left"]
    assert (row["twitches"], row["twitches per hour"], row["hours"]) == ("6", per_hour(6, 6), "6.00")

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
